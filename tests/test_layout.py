"""The architecture, checked: imports point one way (adapters -> store -> runner -> core)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sharedsession

PACKAGE = Path(sharedsession.__file__).parent
SRC = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            # `from sharedsession import _redis` depends on that module, not on the package's names
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            names |= submodules
            if len(submodules) < len(node.names):
                names.add(base)
    return names


def internal_imports(name: str) -> set[str]:
    """The modules of this package that module ``name`` imports (a package counts as its __init__)."""
    found: set[str] = set()
    for imported in imported_modules(MODULES[name]):
        while imported and imported not in MODULES:
            imported = imported.rpartition(".")[0]
        if imported.startswith("sharedsession") and imported != name:
            found.add(imported)
    return found


def layer(name: str) -> str:
    if name.startswith("sharedsession._core"):
        return "core"
    return {
        "sharedsession._redis": "runner",
        "sharedsession._cache": "runner",  # the local cache's listener: I/O beside the runners
        "sharedsession._aead": "runner",  # encryption at rest: cryptography, plugged into the core
        "sharedsession.store": "store",
    }.get(name, "outer")


def test_the_module_table_is_complete() -> None:
    assert {"sharedsession._core.plan", "sharedsession.store", "sharedsession.cli.commands"} <= set(MODULES)


def test_core_imports_only_stdlib_itsdangerous_and_itself() -> None:
    for name, path in MODULES.items():
        if layer(name) != "core":
            continue
        for imported in imported_modules(path):
            top = imported.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top == "itsdangerous"
                or imported == "sharedsession._core"
                or imported.startswith("sharedsession._core.")
            )
            assert allowed, f"{name} imports {imported}"


@pytest.mark.parametrize(
    ("lower", "may_import"),
    [("runner", {"core"}), ("store", {"core", "runner"})],
)
def test_each_layer_imports_only_the_layers_below(lower: str, may_import: set[str]) -> None:
    for name in MODULES:
        if layer(name) == lower:
            for imported in internal_imports(name):
                assert layer(imported) in may_import, f"{name} imports {imported}"


def test_adapters_reach_redis_only_through_the_store() -> None:
    for name in ("sharedsession.flask", "sharedsession.asgi", "sharedsession.django"):
        assert "sharedsession._redis" not in internal_imports(name), name


def test_nothing_outside_the_store_reaches_its_private_parts() -> None:
    for name, path in MODULES.items():
        if name == "sharedsession.store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_core", "_runner"):
                raise AssertionError(f"{name}:{node.lineno} uses .{node.attr}")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path that ends where it starts, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in done:
            return None
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        visiting.append(name)
        for imported in sorted(graph.get(name, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name)
        if cycle:
            return cycle
    return None


def test_no_import_cycle() -> None:
    graph = {name: internal_imports(name) for name in MODULES}
    # A package's __init__ importing its own submodules is how packages expose names,
    # not a cycle: drop the edges from a submodule up to its own package.
    for name, edges in graph.items():
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_check_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    # the circle this layout once had: the CLI imports the demo, whose processes imported the CLI
    assert find_cycle({"cli": {"demo"}, "demo": {"demo.processes"}, "demo.processes": {"cli"}})


def test_root_package_imports_no_framework() -> None:
    code = (
        "import sys, sharedsession; "
        "bad = [m for m in ('flask', 'starlette', 'werkzeug', 'django') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names() -> None:
    for name in sharedsession.__all__:
        assert hasattr(sharedsession, name), name
    assert sharedsession.__version__ == "0.1.0"
    assert (PACKAGE / "py.typed").exists()
