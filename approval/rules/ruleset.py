"""Rule files: the rules that judge one approval item's inspections, as data.

A rule file is ``<item_code>.rules.yaml``::

    item_code: pharmacy-retail-license
    version: "2026.1"
    rules:
      - id: applicant-signature
        description: 申请人已签名确认踏勘记录
        description_en: The applicant signed the inspection record
        severity: fail            # or review: a person decides
        expr: signatures.applicant
        detail: ...               # optional CEL string shown with the reason when false

``expr`` is CEL over the facts (:mod:`approval.rules.facts`) and is true when the rule is
satisfied. Every expression is compiled when the file is loaded; a file with any problem is
rejected whole with a :class:`RuleFileError` naming the file, the line and the rule.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml  # type: ignore[import-untyped]

from .expressions import CompileError, EvalError, Expressions, Program

SUFFIX = ".rules.yaml"
SEVERITIES = ("fail", "review")
_TOP_KEYS = {"item_code", "version", "description", "rules"}
_RULE_KEYS = {"id", "description", "description_en", "severity", "expr", "detail"}
_REQUIRED_RULE_KEYS = ("id", "description", "description_en", "severity", "expr")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class RuleFileError(ValueError):
    """A rule file is not valid; the message starts with ``<file>:<line>:``."""

    def __init__(self, path: Path, line: int, message: str, rule_id: Optional[str] = None) -> None:
        where = f"rule {rule_id!r}: " if rule_id else ""
        super().__init__(f"{path}:{line}: {where}{message}")
        self.path = path
        self.line = line
        self.rule_id = rule_id


@dataclass(frozen=True)
class Rule:
    """One rule: a CEL expression that is true when the inspection satisfies it."""

    id: str
    description: str
    description_en: str
    severity: str
    program: Program
    detail: Optional[Program]
    line: int

    @property
    def expr(self) -> str:
        return self.program.source


@dataclass(frozen=True)
class Outcome:
    """What one rule said about one fact set: satisfied, or not, or an error."""

    rule: Rule
    satisfied: Optional[bool]
    error: Optional[EvalError] = None
    detail: Optional[str] = None


@dataclass(frozen=True)
class RuleSet:
    """The compiled rules of one approval item, from one file."""

    item_code: str
    version: str
    digest: str
    path: Path
    rules: tuple[Rule, ...]
    expressions: Expressions = field(repr=False, compare=False)

    @property
    def rules_version(self) -> str:
        """``<item_code>@<version>+<sha256 of the file, 12 hex>``: an edited file is a new version."""
        return f"{self.item_code}@{self.version}+{self.digest}"

    def evaluate(
        self,
        facts: Mapping[str, Any],
        *,
        stop: Optional[threading.Event] = None,
        on_rule: Optional[Callable[[Rule], None]] = None,
    ) -> list[Outcome]:
        """Every rule's outcome, in file order (blocking; the judge runs it in a thread).

        ``stop`` ends the evaluation before the next rule; ``on_rule`` is called before each
        rule (tracing, and tests that need a slow judgement).
        """
        activation = self.expressions.bind(facts)
        outcomes = []
        for rule in self.rules:
            if stop is not None and stop.is_set():
                break
            if on_rule is not None:
                on_rule(rule)
            value = rule.program.run(activation)
            if isinstance(value, EvalError):
                outcomes.append(Outcome(rule, None, value))
            elif not isinstance(value, bool):
                outcomes.append(Outcome(rule, None, EvalError(f"the rule gave {value!r}, not true or false")))
            elif value:
                outcomes.append(Outcome(rule, True))
            else:
                outcomes.append(Outcome(rule, False, detail=_detail(rule, activation)))
        return outcomes


def load_rules(path: Path, expressions: Optional[Expressions] = None) -> RuleSet:
    """Read and compile one rule file; any problem raises :class:`RuleFileError`."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleFileError(path, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise RuleFileError(path, line, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(path, 1, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise RuleFileError(path, 1, "must be a mapping with item_code, version and rules")
    nodes = _children(root)
    _no_unknown_keys(path, data, _TOP_KEYS, nodes, root, None)
    item_code = _text(path, data, "item_code", nodes, root, None)
    if path.name != item_code + SUFFIX:
        raise RuleFileError(path, _line(nodes, "item_code", root), f"item_code {item_code!r} does not match the file name; name it {item_code}{SUFFIX}")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RuleFileError(path, _line(nodes, "version", root), f'version must be a string; quote it (version: "{version}")')
    listed = data.get("rules")
    rules_node = nodes.get("rules")
    if not isinstance(listed, list) or not listed or not isinstance(rules_node, yaml.SequenceNode):
        raise RuleFileError(path, _line(nodes, "rules", root), "rules must be a non-empty list")

    expressions = expressions or Expressions()
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for entry, node in zip(listed, rules_node.value):
        rules.append(_rule(path, entry, node, expressions, seen))
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return RuleSet(item_code, version.strip(), digest, path, tuple(rules), expressions)


def _rule(path: Path, entry: Any, node: yaml.Node, expressions: Expressions, seen: dict[str, int]) -> Rule:
    line = int(node.start_mark.line) + 1
    if not isinstance(entry, dict) or not isinstance(node, yaml.MappingNode):
        raise RuleFileError(path, line, "a rule must be a mapping with id, description, description_en, severity and expr")
    nodes = _children(node)
    named = entry.get("id") if isinstance(entry.get("id"), str) else None  # for messages until checked
    _no_unknown_keys(path, entry, _RULE_KEYS, nodes, node, named)
    rule_id = _text(path, entry, "id", nodes, node, None)
    for key in _REQUIRED_RULE_KEYS:
        _text(path, entry, key, nodes, node, rule_id)
    if not _RULE_ID.match(rule_id):
        raise RuleFileError(path, _line(nodes, "id", node), "id must be lower-case letters, digits, '-', '_' or '.'", rule_id)
    if rule_id in seen:
        raise RuleFileError(path, line, f"the id is already used by the rule at line {seen[rule_id]}", rule_id)
    seen[rule_id] = line
    severity = entry["severity"]
    if severity not in SEVERITIES:
        raise RuleFileError(path, _line(nodes, "severity", node), f"severity must be fail or review, not {severity!r}", rule_id)
    program = _compile(path, expressions, entry["expr"], nodes["expr"], rule_id, "bool")
    detail = None
    if "detail" in entry:
        _text(path, entry, "detail", nodes, node, rule_id)
        detail = _compile(path, expressions, entry["detail"], nodes["detail"], rule_id, "string")
    return Rule(rule_id, entry["description"].strip(), entry["description_en"].strip(), severity, program, detail, line)


def _compile(path: Path, expressions: Expressions, source: str, node: yaml.Node, rule_id: str, result: str) -> Program:
    try:
        return expressions.compile(source, result)
    except CompileError as exc:
        first = exc.problems[0]
        # a block scalar (| or >) starts on the line after its indicator
        start = node.start_mark.line + (2 if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") else 1)
        what = "expr" if result == "bool" else "detail"
        message = "; ".join(f"{p.message} (column {p.column})" for p in exc.problems)
        raise RuleFileError(path, start + first.line - 1, f"bad CEL in {what}: {message}", rule_id) from None


def _detail(rule: Rule, activation: Any) -> Optional[str]:
    if rule.detail is None:
        return None
    value = rule.detail.run(activation)
    return value if isinstance(value, str) else None  # a detail never changes a verdict


def _children(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _line(nodes: dict[str, yaml.Node], key: str, parent: yaml.Node) -> int:
    node = nodes.get(key, parent)
    return int(node.start_mark.line) + 1


def _text(path: Path, data: dict[str, Any], key: str, nodes: dict[str, yaml.Node], parent: yaml.Node, rule_id: Optional[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        problem = "is missing" if key not in data else "must be a non-empty string"
        raise RuleFileError(path, _line(nodes, key, parent), f"{key} {problem}", rule_id)
    return value


def _no_unknown_keys(path: Path, data: dict[str, Any], allowed: set[str], nodes: dict[str, yaml.Node], parent: yaml.Node, rule_id: Optional[str]) -> None:
    for key in data:
        if key not in allowed:
            raise RuleFileError(path, _line(nodes, str(key), parent), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})", rule_id)
