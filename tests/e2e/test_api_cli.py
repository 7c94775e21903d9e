"""`pyingress ingress create|list|update|delete` as a user runs it, against pyingress and against livekit-server."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ingress_api import normalised
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def pyingress(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory()


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "pyingress", "ingress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        input=stdin,
        cwd=REPO,
    )


def _flags(url: str) -> list[str]:
    return ["--url", url, "--api-key", "devkey", "--api-secret", "secret"]


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _session(url: str, room: str) -> dict[str, Any]:
    """The README's ingress workflow, once, with every output kept."""
    out: dict[str, Any] = {}
    flags = _flags(url)
    preset = json.loads((EXAMPLES / "rtmp-preset-ingress.json").read_text())
    out["preset"] = _json(cli("create", "-", *flags, "--json", stdin=json.dumps({**preset, "room_name": room})))
    custom = json.loads((EXAMPLES / "rtmp-custom-options-ingress.json").read_text())
    custom["room_name"] = room
    # Environment instead of flags, a ws:// room URL as LIVEKIT_URL usually is.
    env = {"LIVEKIT_URL": url.replace("http://", "ws://"), "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    out["custom"] = _json(cli("create", "-", "--json", env=env, stdin=json.dumps(custom)))
    whip = json.loads((EXAMPLES / "whip-transcoding-ingress.json").read_text())
    out["whip"] = _json(cli("create", "-", *flags, "--json", stdin=json.dumps({**whip, "room_name": room})))
    ingress_id = out["preset"]["ingress_id"]
    out["update"] = _json(cli("update", str(EXAMPLES / "disable-ingress.json"), "--id", ingress_id, *flags, "--json"))
    out["list"] = _json(cli("list", "--room", room, *flags, "--json"))
    out["list id"] = _json(cli("list", "--id", ingress_id, *flags, "--json"))
    out["table"] = cli("list", "--room", room, *flags).stdout
    out["delete"] = _json(cli("delete", ingress_id, *flags, "--json"))
    missing = cli("delete", ingress_id, *flags)
    out["delete again"] = (missing.returncode, missing.stderr.strip())
    invalid = cli("create", "-", *flags, stdin=json.dumps({**custom, "audio": {"options": {"channels": 3}}}))
    out["invalid"] = (invalid.returncode, invalid.stderr.strip())
    return out


def test_cli_against_pyingress_and_livekit_server(livekit_server: LivekitPeer, pyingress: PyingressPeer) -> None:
    room = "cli-" + uuid.uuid4().hex[:8]
    ours = _session(pyingress.http_url, room)
    theirs = _session(livekit_server.http_url, room)
    ours_table, theirs_table = ours.pop("table"), theirs.pop("table")
    for out in (ours, theirs):  # livekit-server lists a room from a Redis set: in no particular order
        out["list"]["items"].sort(key=lambda item: item["name"])
    assert normalised(ours) == normalised(theirs)

    assert ours["preset"]["url"] == pyingress.rtmp_url
    assert ours["custom"]["video"]["options"]["layers"][0]["bitrate"] == 4500000
    assert ours["update"]["enabled"] is False
    assert ours["delete again"] == (1, "pyingress: not_found: twirp error unknown: ingress does not exist (HTTP 404)")
    assert ours["invalid"] == (
        1,
        "pyingress: invalid_argument: twirp error unknown: invalid audio parameters: invalid audio channel count "
        "(HTTP 400)",
    )
    for table, server in ((ours_table, ours), (theirs_table, theirs)):
        lines = table.splitlines()
        assert lines[0].split()[:3] == ["INGRESS", "ID", "NAME"]
        assert len(lines) == 4  # header and three ingresses
        assert server["whip"]["ingress_id"] in table and server["whip"]["stream_key"] in table
        assert "INACTIVE" in table


def test_cli_table_output_and_input_errors(pyingress: PyingressPeer) -> None:
    created = cli("create", str(EXAMPLES / "rtmp-ingress.json"), *_flags(pyingress.http_url))
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(None, 1) if " " in line else (line, "") for line in created.stdout.splitlines())
    assert created.stdout.splitlines()[0].startswith("Ingress ID")
    assert "Push to" in created.stdout and pyingress.rtmp_url + "/" in created.stdout
    assert fields["Input"].strip() == "RTMP"

    typo = cli("create", "-", *_flags(pyingress.http_url), stdin='{"input_type": "RTMP_INPUT", "witdh": 5}')
    assert typo.returncode == 1 and 'no field named "witdh"' in typo.stderr
    no_file = cli("create", "/nonexistent.json", *_flags(pyingress.http_url))
    assert no_file.returncode == 1 and "cannot read /nonexistent.json" in no_file.stderr
    no_key = cli("list", "--url", pyingress.http_url)
    assert no_key.returncode == 1 and "API key and secret" in no_key.stderr
    wrong = cli("list", "--url", pyingress.http_url, "--api-key", "devkey", "--api-secret", "nope")
    assert wrong.returncode == 1 and "HTTP 401: invalid token:" in wrong.stderr
    down = cli("list", "--url", "http://127.0.0.1:9", "--dev")
    assert down.returncode == 1 and "cannot reach http://127.0.0.1:9" in down.stderr
