"""The code passes ruff and mypy --strict (pyproject.toml says which rules): the
test command runs them, so CI is red when they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ruff() -> None:
    found = subprocess.run([str(BIN / "ruff"), "check", "--output-format", "concise", "eas_gateway", "usm", "wbxml",
                            "tests", "benchmarks", "fuzz", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr


def test_mypy_strict() -> None:
    found = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr
