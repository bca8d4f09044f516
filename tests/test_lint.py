"""The linter and formatter, as part of README's test command (so .ci/run runs them on every change)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_finds_nothing():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check (pyproject.toml's [tool.ruff]):\n{result.stdout}{result.stderr}"


def test_ruff_format_would_change_nothing():
    result = _ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, f"run `.venv/bin/ruff format .`:\n{result.stdout}{result.stderr}"
