"""The code stays as the house rules say: ruff-clean, formatted, and mypy-clean on the typed package."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    result = _run(str(BIN / "ruff"), "check", "pyingress", "tests", "bench", "fuzz")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "pyingress", "tests", "bench", "fuzz")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
