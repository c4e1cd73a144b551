"""Checklist templates per approval item: data files, versioned."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .requests import Checkpoint

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Template:
    item_code: str
    item_name: str
    version: str
    time_limit_min: int
    site_radius_m: Optional[float]
    checkpoints: tuple[Checkpoint, ...]
    # sha256 of the file's bytes, first 12 hex digits: an edited file is a new version
    digest: str = ""
    # checkpoint code -> (zh, en): what the inspector should capture for the rules
    hints: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # checkpoint code -> what recognition/ reads on its captures ("business_licence", "shop_sign",
    # or a permit such as "food_permit": recognition.recognizer.KINDS)
    recognize: Mapping[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """``<item_code>@<version>+<digest>``, like a rule set's version."""
        return f"{self.item_code}@{self.version}+{self.digest}"


class TemplateError(ValueError):
    """A template file is not valid; the message names the file."""


def load_template(path: Path) -> Template:
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
        checkpoints = tuple(
            Checkpoint(str(c["code"]), str(c["title"]), bool(c.get("required", True)))
            for c in data["checkpoints"]
        )
        return Template(
            item_code=str(data["item_code"]),
            item_name=str(data["item_name"]),
            version=str(data["version"]),
            time_limit_min=int(data.get("time_limit_min", 30)),
            site_radius_m=data.get("site_radius_m"),
            checkpoints=checkpoints,
            digest=hashlib.sha256(raw).hexdigest()[:12],
            hints={
                str(c["code"]): (str(c["hint"]), str(c.get("hint_en", c["hint"])))
                for c in data["checkpoints"]
                if c.get("hint")
            },
            recognize={str(c["code"]): str(c["recognize"]) for c in data["checkpoints"] if c.get("recognize")},
        )
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise TemplateError(f"{path}: missing or bad field: {exc}") from exc


class Templates:
    """The templates of the built-in directory, overridden by an admin directory."""

    def __init__(self, *dirs: Path) -> None:
        self._by_code: dict[str, Template] = {}
        for directory in (BUILTIN_DIR, *dirs):
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.json")):
                template = load_template(path)
                self._by_code[template.item_code] = template
        logger.info("checklist templates: %s", ", ".join(sorted(self._by_code)))

    def find(self, item_code: str) -> Optional[Template]:
        return self._by_code.get(item_code)

    def all(self) -> list[Template]:
        return [self._by_code[c] for c in sorted(self._by_code)]
