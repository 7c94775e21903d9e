"""`pyingress ingress watch` follows an ingress's state live against a real `pyingress serve`: from INACTIVE to
PUBLISHING (with the input described) while ffmpeg pushes, back when it stops, and "deleted" when it is."""

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.processes import stop
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyingress", "ingress", *args], capture_output=True, text=True, timeout=90, input=stdin
    )


def _watch(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pyingress", "ingress", "watch", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def peer(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory()


def test_watch_follows_a_session_and_the_delete(peer: PyingressPeer, tmp_path: Path) -> None:
    flags = ["--url", peer.http_url, "--dev"]
    request = {"input_type": "RTMP_INPUT", "name": "watched", "room_name": "watch-room", "participant_identity": "cam"}
    created = _cli("create", "-", *flags, "--json", stdin=json.dumps(request))
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    ingress_id, key = info["ingress_id"], info["stream_key"]

    follow: subprocess.Popen[str] | None = None
    until = _watch(ingress_id, *flags, "--until", "PUBLISHING", "--timeout", "60", "--interval", "0.5")
    assert until.stdout is not None
    first = until.stdout.readline()  # the state before anything is pushed
    encoder = start_ffmpeg(TestPattern(duration=60), f"{peer.rtmp_url}/{key}", tmp_path / "ffmpeg.log")
    try:
        out, err = until.communicate(timeout=90)
        assert until.returncode == 0, (out, err)
        lines = [first.rstrip("\n"), *out.splitlines()]
        assert lines[0].split()[1:] == [ingress_id, "INACTIVE"], lines
        assert re.fullmatch(rf"\d\d:\d\d:\d\d  {ingress_id}  PUBLISHING  RT_\w+( .*)?", lines[-1]), lines
        # The input is described as soon as the session knows it (it may come with the next report).
        follow = _watch(ingress_id, *flags, "--interval", "0.5")
        time.sleep(12)  # the session reports its input every 10 s
        stop(encoder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = _cli("list", "--id", ingress_id, *flags, "--json")
            if json.loads(listed.stdout)["items"][0]["state"]["status"] == "ENDPOINT_INACTIVE":
                break
            time.sleep(0.5)
        time.sleep(1.5)  # three of the watcher's looks at INACTIVE before the delete
        assert _cli("delete", ingress_id, *flags).returncode == 0
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        statuses = [line.split()[2] for line in out.splitlines()]
        assert statuses[0] == "PUBLISHING" and statuses[-2:] == ["INACTIVE", "deleted"], out
        described = [line for line in out.splitlines() if "video H264 1280×720 30 fps" in line]
        assert described and "audio aac 2 ch" in described[0], out
    finally:
        stop(encoder)
        for process in (until, follow):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()


def test_watch_of_an_unknown_ingress(peer: PyingressPeer) -> None:
    result = _cli("watch", "IN_nosuchthing", "--url", peer.http_url, "--dev")
    assert result.returncode == 1 and result.stderr.strip() == "pyingress: IN_nosuchthing: ingress does not exist"
