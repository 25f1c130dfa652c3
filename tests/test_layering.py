"""Imports point down only (ARCHITECTURE.md): wbxml is sans-I/O and depends on
nothing but the standard library and lxml."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_wbxml_uses_only_stdlib_and_lxml() -> None:
    foreign = {m for m in _imports("wbxml") if m not in sys.stdlib_module_names} - {"lxml", "wbxml"}
    assert not foreign


def test_wbxml_does_no_io() -> None:
    assert not _imports("wbxml") & {"asyncio", "socket", "ssl", "http", "urllib", "subprocess", "threading"}


def test_usm_never_imports_the_protocol_layer() -> None:
    assert not _imports("usm") & {"eas_gateway", "wbxml", "starlette", "uvicorn"}


def test_sql_lives_in_usm_only() -> None:
    offenders = [
        str(path.relative_to(ROOT)) for path in (ROOT / "eas_gateway").rglob("*.py")
        if any(call in path.read_text() for call in (".execute(", ".fetch(", ".fetchrow(", ".fetchval("))
    ]
    assert not offenders
