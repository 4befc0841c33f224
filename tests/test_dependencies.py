"""Every declared dependency is used and pinned; every third-party import is declared.

A dependency nothing uses still costs an install, a supply-chain risk and an upgrade to review
(issue 8: `httpx2` was declared and never imported). Names are matched through the installed
distributions' metadata (importlib.metadata.packages_distributions), never by guessing.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("gateway", "casestore", "feedback", "sms", "ivr")
SOURCES = (*APP_PACKAGES, "tests", "bench")

# Dependencies the code uses without importing them, each with the place that proves it.
USED_WITHOUT_IMPORT = {
    # Starlette parses forms (request.form()) with it and refuses to without it.
    "python-multipart": ("gateway", re.compile(r"await request\.form\(\)")),
    # Starlette's Jinja2Templates renders the console with it.
    "jinja2": ("gateway", re.compile(r"Jinja2Templates\(")),
    # Starlette's TestClient (starlette 1.10) imports httpx2, and with only httpx it warns
    # (an error under filterwarnings=error): the tests' client needs it.
    "httpx2": ("tests", re.compile(r"from starlette\.testclient import TestClient")),
    # Tools the gate runs as commands.
    "ruff": ("Makefile", re.compile(r"\$\(BIN\)/ruff ")),
    "mypy": ("Makefile", re.compile(r"\$\(BIN\)/mypy")),
    "import-linter": ("Makefile", re.compile(r"\$\(BIN\)/lint-imports")),
}
# Declared but not imported, each with why it stays declared. Empty: an unused dependency is
# removed (the Africa's Talking SDK went in issue 8: the senders and callers use its documented
# REST API, because SDK 2.0.3 drops the HTTP status of an error, see
# gateway/providers/africastalking/rest.py).
DECLARED_UNUSED: set[str] = set()


def canonicalize_name(name: str) -> str:
    """The normalised distribution name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return canonicalize_name(re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0])


def _declared() -> tuple[list[str], list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = [_name(r) for r in project["dependencies"]]
    dev = [_name(r) for r in project["optional-dependencies"]["dev"]]
    return main, dev


@cache
def _imports(where: tuple[str, ...]) -> frozenset[str]:
    """Top-level names of every absolute import in the .py files under `where`."""
    names: set[str] = set()
    for folder in where:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return frozenset(names)


def _distributions_of(module_names: frozenset[str]) -> set[str]:
    """The installed distributions that provide these top-level modules."""
    owners = packages_distributions()
    return {canonicalize_name(dist) for name in module_names for dist in owners.get(name, ())}


def _third_party(module_names: frozenset[str]) -> frozenset[str]:
    local = {*APP_PACKAGES, "tests", "bench"}
    return frozenset(
        name
        for name in module_names
        if name not in local and name not in sys.stdlib_module_names and name != "__future__"
    )


def test_every_declared_dependency_is_used() -> None:
    main, dev = _declared()
    imported = _distributions_of(_imports(SOURCES))
    unused = []
    for name in [*main, *dev]:
        if name in imported or name in DECLARED_UNUSED:
            continue
        proof = USED_WITHOUT_IMPORT.get(name)
        if proof is not None:
            where, pattern = proof
            target = ROOT / where
            files = [target] if target.is_file() else list(target.rglob("*.py"))
            if any(pattern.search(f.read_text()) for f in files):
                continue
        unused.append(name)
    assert unused == [], f"declared in pyproject.toml but never used: {unused}"


def test_the_declared_but_unused_list_holds_only_unused_ones() -> None:
    imported = _distributions_of(_imports(SOURCES))
    assert DECLARED_UNUSED.isdisjoint(imported), "now imported: drop it from DECLARED_UNUSED"


def test_every_third_party_import_is_declared() -> None:
    main, dev = _declared()
    owners = packages_distributions()
    app = _third_party(_imports(APP_PACKAGES))
    missing_main = sorted(
        name for name in app if not {canonicalize_name(d) for d in owners.get(name, ())} & set(main)
    )
    assert missing_main == [], f"imported by the app but not a dependency: {missing_main}"
    rest = _third_party(_imports(("tests", "bench")))
    missing = sorted(
        name
        for name in rest
        if not {canonicalize_name(d) for d in owners.get(name, ())} & {*main, *dev}
    )
    assert missing == [], f"imported by tests or bench but not declared: {missing}"


def test_constraints_pin_every_declared_dependency() -> None:
    main, dev = _declared()
    pins = {
        canonicalize_name(line.split("==", 1)[0].strip())
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    unpinned = sorted((set(main) | set(dev)) - pins)
    assert unpinned == [], f"declared but not pinned in constraints.txt: {unpinned}"
