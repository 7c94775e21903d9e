"""The WHIP benchmark runs in CI as a short smoke: it must work and print its figures (read by people, not
asserted: benchmarks are not timed tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_whip_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "bench/whip.py", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    with capsys.disabled():
        print(f"\n--- bench/whip.py --smoke ---\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RTP in -> RTP out" in result.stdout and "sessions per core" in result.stdout
