"""The benchmarks run in CI as short smokes: they must work and print their ratios (numbers are read by people).

Their output is shown in the test log, not asserted on beyond having been produced: benchmarks are not timed tests.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("bench/transcode_ladder.py", "pyingress/this"),
        ("bench/publish_latency.py", "first decoded frame"),
        ("bench/url_pull.py", "URL/RTMP CPU"),
        ("bench/soak.py", "to the end: RSS MB"),
    ],
)
def test_benchmark_smoke(script: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run([sys.executable, script, "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600)
    with capsys.disabled():
        print(f"\n--- {script} --smoke ---\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert expected in result.stdout
