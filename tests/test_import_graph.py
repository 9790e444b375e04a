"""No import circle in daemon/ibhost/: modules depend downward only.

The graph is read from the source (ast), every import counted: relative and
absolute, at module level, inside functions (lazy imports) and under
TYPE_CHECKING, since a circle through any of them still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "ibhost"

# The simulator's circle (its server, sessions and message handlers reach into each
# other), allowed until the simulator's split lands. When a component below shrinks,
# shrink this set; when the circle is gone, this test fails until ALLOWED is empty.
ALLOWED: frozenset[str] = frozenset()


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[:len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from . import x`` imports the module x when there is one
            candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def components(g: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in g[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_scan_finds_a_circle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert components(g) == [{"a", "b", "c"}]


def test_no_import_circle() -> None:
    found = components(graph())
    assert not found, "import circles (break each by moving what both sides need into a " \
                      f"module they both import): {[sorted(c) for c in found]}"


def test_config_does_not_import_the_watchdog() -> None:
    from_config = reachable(graph(), "ibhost.config")
    assert not {m for m in from_config if m.startswith("ibhost.watchdog")}, from_config


def test_the_connector_request_modules_depend_downward() -> None:
    """service uses account and historical; they and service send through calls."""
    g = graph()
    assert "ibhost.connector.service" not in reachable(g, "ibhost.connector.account")
    assert "ibhost.connector.service" not in reachable(g, "ibhost.connector.historical")
    for m in ("service", "account", "historical"):
        assert "ibhost.connector.calls" in g[f"ibhost.connector.{m}"], m
