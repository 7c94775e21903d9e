"""The `pyingress` command as a user runs it."""

import subprocess
import sys

from tests.media.test_presets import REFERENCE_PRESETS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyingress", *args], capture_output=True, text=True, timeout=60)


def test_presets_prints_every_layer_of_every_preset() -> None:
    result = run("presets")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    for name, fps, layers in REFERENCE_PRESETS:
        line = lines[name]
        assert f"H264_BASELINE {fps} fps" in line
        for quality, width, height, bitrate in layers:
            assert f"{['LOW', 'MEDIUM', 'HIGH'][quality]} {width}×{height} @ {bitrate:,}" in line
    assert "OPUS 2 ch @ 96,000" in lines["OPUS_STEREO_96KBPS"]
    assert "OPUS 1 ch @ 64,000" in lines["OPUS_MONO_64KBS"]


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("pyingress ")
    result = run("--help")
    assert "serve" in result.stdout and "presets" in result.stdout


def test_console_script_is_installed() -> None:
    import shutil
    from pathlib import Path

    script = Path(sys.executable).parent / "pyingress"
    assert script.exists() or shutil.which("pyingress")
    result = subprocess.run([str(script), "presets"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "H264_720P_30FPS_3_LAYERS" in result.stdout
