"""The livekit-mode benchmark runs in CI as a short smoke: it must work and print its figures (read by people)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_psrpc_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "bench/psrpc_latency.py", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    with capsys.disabled():
        print(f"\n--- bench/psrpc_latency.py --smoke ---\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "psrpc summary: pyingress publish → BUFFERING" in result.stdout
