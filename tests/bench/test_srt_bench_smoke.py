"""bench/srt.py runs in CI as a short smoke: both parts work and print their figures (read by people, not asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_srt_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "bench/srt.py", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    with capsys.disabled():
        print(f"\n--- bench/srt.py --smoke ---\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pyingress binding + TS reader" in result.stdout and "one frame per PES" in result.stdout
