"""The fairway package's imports run one way: no module imports, at module level or inside a function, a module
that imports it back (parsed with ast, so lazy imports count)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT

PACKAGE = PROJECT / "include" / "fairway"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the fairway modules it imports anywhere in its body (absolute and relative imports)."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        package_of = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package_of.split(".")[: len(package_of.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t not in (name, "fairway")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_fairway_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "fairway.erasures" in graph["fairway.features.store"]
    problems = {tuple(c): {m: sorted(graph[m] & set(c)) for m in c} for c in cycles(graph)}
    assert problems == {}


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path) -> None:
    """A circle closed only by an import inside a function is found (what the store, privacy and training
    modules had)."""
    package = tmp_path / "fairway"
    (package / "features").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "features" / "__init__.py").write_text("")
    (package / "features" / "store.py").write_text("def f():\n    from fairway.privacy import g\n")
    (package / "privacy.py").write_text("from fairway.training import h\n")
    (package / "training.py").write_text("from .features import store\n")
    (package / "gate.py").write_text("import fairway.training\n")
    graph = import_graph(package)
    assert cycles(graph) == [["fairway.features.store", "fairway.privacy", "fairway.training"]]
