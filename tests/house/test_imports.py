"""The house's import rules: no cycle among product packages or among their modules.

DESIGN.md: a lower layer never imports a higher one (it takes callbacks or emits
events). Imports inside ``if TYPE_CHECKING:`` blocks count too: a type cycle is a design
cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "takan", "errors", "web", "signaling", "session", "media", "recorder", "evidence", "storage",
    "approval", "identity", "privacy", "archive", "web_client", "recognition", "jsonsafe",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {f for f in found if f.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # a module's own parent packages are initialised before it: not an edge
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges[name] = {m for m in imports_of(path, name) if m in modules and m != name and m not in ancestors}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_package_import_cycle() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in graph().items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    cycle = find_cycle(packages)
    assert cycle is None, " -> ".join(cycle or [])


def test_doors_do_not_call_each_other() -> None:
    """web/ and signaling/ are two doors into the session domain; neither imports the other."""
    for module, targets in graph().items():
        top = module.split(".")[0]
        if top in ("web", "signaling"):
            other = "signaling" if top == "web" else "web"
            assert not any(t.split(".")[0] == other for t in targets), module
