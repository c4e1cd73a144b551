"""The seam to the CEL implementation: compiling rule expressions and running them.

Takan runs CEL with ``cel-expr-python``, the CEL project's Python wrapper of cel-cpp
(chosen by measurement, see README.md beside this file). Nothing else in Takan imports it,
so another implementation would replace this module only.

Every fact is declared with its type (:data:`approval.rules.facts.FACT_TYPES`), so a rule
that names an unknown fact or function, or compares a count with a string, is rejected
when the file is loaded rather than sending every inspection to manual review. ``facts``
is the map of all facts, for the optional ones: ``has(facts.overtime_reason)``.
Evaluation is bounded: a comprehension budget of 10,000 iterations per expression and
RE2 regular expressions (linear time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from cel_expr_python import cel  # type: ignore[import-untyped]
from cel_expr_python.ext import ext_bindings, ext_math, ext_optional, ext_strings  # type: ignore[import-untyped]

from .facts import FACT_TYPES

FACTS_ROOT = "facts"
_PROBLEM = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_MISSING_VARIABLE = re.compile(r'No value with name "([^"]+)" found in Activation')
_MISSING_KEY = re.compile(r'Key not found in map : "([^"]*)"')


@dataclass(frozen=True)
class Problem:
    """One compile error, located in the expression (1-based line and column)."""

    line: int
    column: int
    message: str


class CompileError(ValueError):
    """An expression does not compile; ``problems`` locates each error in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.line}:{p.column}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class EvalError:
    """An expression that could not be evaluated; ``missing`` names the absent fact or key."""

    message: str
    missing: Optional[str] = None


@dataclass(frozen=True)
class Program:
    """One compiled expression, ready to run on any number of fact sets."""

    source: str
    _expression: Any = field(repr=False, compare=False)

    def run(self, activation: Any) -> Union[Any, EvalError]:
        """The expression's value (a Python value), or an :class:`EvalError`."""
        try:
            value = self._expression.eval(activation)
        except RuntimeError as exc:  # e.g. "Iteration budget exceeded"
            return _eval_error(str(exc))
        if value.type() == cel.Type.ERROR:
            return _eval_error(str(value.value()))
        return value.value()


class Expressions:
    """A CEL environment that knows the facts, their types and the standard extensions."""

    def __init__(self) -> None:
        variables = {name: cel_type(kind) for name, kind in FACT_TYPES.items()}
        variables[FACTS_ROOT] = cel_type("map(string, dyn)")
        self._env = cel.NewEnv(
            variables=variables,
            extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_math.ExtMath(), ext_bindings.ExtBindings()],
        )

    def compile(self, source: str, result: str) -> Program:
        """Compile ``source``, which must give a ``result`` ("bool" or "string")."""
        try:
            expression = self._env.compile(source)
        except RuntimeError as exc:
            raise CompileError(_problems(str(exc))) from None
        given = expression.return_type()
        if given != cel_type(result) and given != cel.Type.DYN:
            raise CompileError([Problem(1, 1, f"the expression gives {given.name().lower()}, not {result}")])
        return Program(source, expression)

    def bind(self, facts: Mapping[str, Any]) -> Any:
        """An activation of ``facts`` (absent and ``None`` facts left out) for :meth:`Program.run`."""
        present = {name: value for name, value in facts.items() if value is not None and name in FACT_TYPES}
        for name, value in present.items():  # a whole number where a double is declared
            if FACT_TYPES[name] == "double" and isinstance(value, int) and not isinstance(value, bool):
                present[name] = float(value)
        return self._env.Activation({**present, FACTS_ROOT: present})


def cel_type(signature: str) -> Any:
    """The CEL type of a signature such as ``map(string, list(int))``."""
    signature = signature.strip()
    if signature.startswith("list(") and signature.endswith(")"):
        return cel.Type.List(cel_type(signature[5:-1]))
    if signature.startswith("map(") and signature.endswith(")"):
        key, _, value = signature[4:-1].partition(",")
        return cel.Type.Map(cel_type(key), cel_type(value))
    return cel.Type(signature)


def _problems(text: str) -> list[Problem]:
    found = [Problem(int(m.group(1)), int(m.group(2)), m.group(3).strip()) for m in _PROBLEM.finditer(text)]
    return found or [Problem(1, 1, text.strip())]


def _eval_error(text: str) -> EvalError:
    for pattern in (_MISSING_VARIABLE, _MISSING_KEY):
        match = pattern.search(text)
        if match:
            return EvalError(text, missing=match.group(1))
    return EvalError(text)
