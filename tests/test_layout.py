"""The architecture, checked: imports point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sharedsession

PACKAGE = Path(sharedsession.__file__).parent
# The core decides; it may use only the standard library, itsdangerous, and
# the pure root modules (settings, errors, the session mapping).
CORE_ALLOWED = {
    "itsdangerous",
    "sharedsession._core",
    "sharedsession.errors",
    "sharedsession.config",
    "sharedsession.session",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_only_stdlib_and_itsdangerous() -> None:
    pure = [*PACKAGE.glob("_core/*.py"), PACKAGE / "errors.py", PACKAGE / "config.py", PACKAGE / "session.py"]
    for path in pure:
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or any(
                name == a or name.startswith(a + ".") for a in CORE_ALLOWED
            )
            assert allowed, f"{path.name} imports {name}"


def test_root_package_imports_no_framework() -> None:
    code = (
        "import sys, sharedsession; "
        "bad = [m for m in ('flask', 'starlette', 'werkzeug') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names() -> None:
    for name in sharedsession.__all__:
        assert hasattr(sharedsession, name), name
    assert sharedsession.__version__ == "0.1.0"
    assert (PACKAGE / "py.typed").exists()
