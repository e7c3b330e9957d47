"""The import graph of src/rnnkit, read from the source (every import, also those inside
functions): no module imports a level above its own, no cycle, and no private name
(``_x``) used across a package boundary. The levels are docs/ARCHITECTURE.md's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module may import its own level or lower ones
LEVELS = {
    "rnnkit.io": 0,
    "rnnkit.fast": 1,
    "rnnkit.engine": 2,
    "rnnkit.text": 3,
    "rnnkit.models": 4,
    "rnnkit.embeddings": 4,
    "rnnkit.ngram": 4,
    "rnnkit.train": 5,
    "rnnkit.recipes": 6,
    "rnnkit.diagnostics": 6,
    "rnnkit.deploy": 6,
    "rnnkit.cli": 7,
    "rnnkit.api": 7,
}
TOP = {"rnnkit", "rnnkit.__main__"}  # the public face: may import anything


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / "rnnkit").rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in ``mod``."""
    tree = ast.parse(MODULES[mod].read_text())
    package = mod if MODULES[mod].name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("rnnkit")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("rnnkit"):
                for a in node.names:  # "from rnnkit.x import y": y may be a module
                    sub = f"{base}.{a.name}"
                    found.append((sub, [], node.lineno) if sub in MODULES else
                                 (base, [a.name], node.lineno))  # fmt: skip
    return found


def level(mod: str) -> int | None:
    for prefix, lv in LEVELS.items():
        if mod == prefix or mod.startswith(prefix + "."):
            return lv
    return None


def package_of(mod: str) -> str:
    return mod if MODULES[mod].name == "__init__.py" else mod.rpartition(".")[0]


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod in MODULES:
        for target, _, _ in imports(mod):
            t = resolve(target)
            if t is not None and t != mod:
                graph[mod].add(t)
    return graph


def test_every_module_has_a_level():
    assert not [m for m in MODULES if m not in TOP and level(m) is None]


def test_no_import_runs_up_the_levels():
    upward = []
    for mod in MODULES:
        if mod in TOP:
            continue
        for target, _, line in imports(mod):
            t = resolve(target)
            if t is None or t == mod:
                continue
            if t in TOP or level(t) > level(mod):
                upward.append(f"{mod}:{line} imports {t}")
    assert not upward, "\n".join(upward)


def test_no_cycles():
    graph = edges()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n) :] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_across_packages():
    """``from rnnkit.a import _x`` or ``alias._x`` on a module of another package."""
    found = []
    for mod in MODULES:
        tree = ast.parse(MODULES[mod].read_text())
        aliases: dict[str, str] = {}
        for target, names, line in imports(mod):
            t = resolve(target)
            if t is None or t == mod:
                continue
            found += [f"{mod}:{line} imports {t}.{n}" for n in names if n.startswith("_")]
            if t.split(".")[-1].startswith("_"):
                found.append(f"{mod}:{line} imports the private module {t}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module in MODULES:
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in MODULES:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != mod
            ):  # fmt: skip
                found.append(f"{mod}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("check", [test_no_import_runs_up_the_levels, test_no_cycles])
def test_the_checks_can_fail(check, monkeypatch):
    """A made-up upward import (engine -> cli) and cycle (io <-> engine) are caught."""
    real = imports

    def with_fake(mod):  # type: ignore[no-untyped-def]
        extra = []
        if mod == "rnnkit.engine.ops":
            extra.append(("rnnkit.cli", [], 1))
        if mod == "rnnkit.io":
            extra.append(("rnnkit.engine.ops", [], 1))
        return real(mod) + extra

    monkeypatch.setitem(globals(), "imports", with_fake)
    with pytest.raises(AssertionError):
        check()
