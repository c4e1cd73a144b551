"""The rule sets of every approval item: built in, overridden by an admin directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .expressions import Expressions
from .ruleset import SUFFIX, RuleSet, load_rules

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent


class RuleBook:
    """Rule sets by item code: the built-in directory, then each of ``dirs`` in turn.

    A later directory's file for an item replaces an earlier one. Loading is all or nothing:
    a bad file raises :class:`~approval.rules.ruleset.RuleFileError`, and :meth:`reload`
    then keeps the rule sets it had.
    """

    def __init__(self, *dirs: Path) -> None:
        self._dirs = (BUILTIN_DIR, *(Path(d) for d in dirs))
        self._expressions = Expressions()
        self._by_code: dict[str, RuleSet] = {}
        self.reload()

    def reload(self) -> None:
        """Read every directory again (an admin edited a file)."""
        loaded: dict[str, RuleSet] = {}
        for directory in self._dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*" + SUFFIX)):
                rules = load_rules(path, self._expressions)
                loaded[rules.item_code] = rules
        self._by_code = loaded
        logger.info("rule sets: %s", ", ".join(r.rules_version for r in self.all()) or "none")

    def find(self, item_code: str) -> Optional[RuleSet]:
        return self._by_code.get(item_code)

    def all(self) -> list[RuleSet]:
        return [self._by_code[code] for code in sorted(self._by_code)]
