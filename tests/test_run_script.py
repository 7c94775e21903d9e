"""`./run` as a new user types it: the ingress and presets verbs work from a checkout, a missing verb shows usage.

The suite runs after set-up, so the set-up inside `./run` finds everything installed and takes about a second.
"""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USAGE = "usage: ./run serve [options] | ./run test [pytest options] | ./run ingress"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["./run", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ingress_help_names_every_subcommand() -> None:
    result = run("ingress", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: pyingress ingress")
    for command in ("create", "list", "update", "delete"):
        assert command in result.stdout


def test_ingress_create_help_names_the_connection_flags() -> None:
    result = run("ingress", "create", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--url", "--api-key", "--api-secret", "--dev", "file"):
        assert flag in result.stdout


def test_presets_prints_livekit_presets() -> None:
    result = run("presets")
    assert result.returncode == 0, result.stderr
    assert "H264_720P_30FPS_3_LAYERS" in result.stdout
    assert "OPUS_STEREO_96KBPS" in result.stdout


def test_no_verb_exits_2_with_usage() -> None:
    result = run()
    assert result.returncode == 2
    assert result.stderr.startswith(USAGE)
    assert result.stdout == ""
