"""The `pyingress` command as a user runs it."""

import subprocess
import sys
from pathlib import Path

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


# The first ingress.json of LiveKit's transcoding docs (shared/seeds/transcoding-configuration.md), as printed there:
# a comma is missing at the end of its participant_name line.
SEED_MISSING_COMMA = """{
    "name": "Name of the egress goes here",
    "room_name": "Name of the room to connect to",
    "participant_identity": "Unique identity for the room participant the Ingress service will connect as",
    "participant_name": "Name displayed in the room for the participant"
    "video": {
        "name": "track name",
        "source": "SCREEN_SHARE",
        "preset": "Video preset enum value"
    }
}
"""


def _stdin(text: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pyingress", "ingress", "create", "--dev", "--url", "http://127.0.0.1:9", "-"]
    return subprocess.run(command, input=text, capture_output=True, text=True, timeout=60)


def test_a_malformed_request_file_is_told_by_line_and_column(tmp_path: Path) -> None:
    seed = tmp_path / "ingress.json"
    seed.write_text(SEED_MISSING_COMMA)
    # Read before anything is sent: no server is needed to hear what is wrong with the file.
    result = run("ingress", "create", "--dev", "--url", "http://127.0.0.1:9", str(seed))
    assert result.returncode == 1 and result.stdout == ""
    first, *shown = result.stderr.splitlines()
    assert first == (
        f"pyingress: {seed}:6:5: not valid JSON: Expecting ',' delimiter: is a comma missing at the end of line 5?"
    )
    assert shown == [
        '     5 |     "participant_name": "Name displayed in the room for the participant"',
        '     6 |     "video": {',
        "       |     ^",
    ]
    # With the comma, the next thing wrong is the placeholder where a preset name belongs: said with the choices.
    seed.write_text(SEED_MISSING_COMMA.replace('participant"\n', 'participant",\n'))
    result = run("ingress", "create", "--dev", "--url", "http://127.0.0.1:9", str(seed))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"pyingress: {seed}: video.preset: 'Video preset enum value' is not a IngressVideoEncodingPreset; one of: "
        "H264_720P_30FPS_3_LAYERS, H264_1080P_30FPS_3_LAYERS,"
    )
    empty = _stdin("")
    assert "stdin:1:1: not valid JSON: Expecting value" in empty.stderr
    typo = _stdin('{"video": {"options": {"layers": [{"quality": "HIGH", "witdh": 1280}]}}}')
    assert 'no field named "witdh"' in typo.stderr and '(did you mean "width"?)' in typo.stderr


def test_watch_refuses_an_unknown_status() -> None:
    result = run("ingress", "watch", "IN_x", "--dev", "--until", "LIVE")
    assert result.returncode == 1 and "--until: LIVE is not a status; one of INACTIVE, BUFFERING" in result.stderr
