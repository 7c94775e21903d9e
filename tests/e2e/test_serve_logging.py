"""`pyingress serve` with ``logging.json: true``: one JSON object per line, the session's ingress and resource ids on
every line logged inside it, and aiortc/aioice quiet at ``debug`` unless ``component_levels`` asks for them."""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livekit import api

from tests.harness.livekit_peer import API_KEY, API_SECRET
from tests.harness.processes import stop
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer


async def _run_one_session(peer: PyingressPeer, tmp_path: Path) -> tuple[str, str]:
    async with api.LiveKitAPI(peer.http_url, API_KEY, API_SECRET) as client:
        info = await client.ingress.create_ingress(
            api.CreateIngressRequest(
                input_type=api.IngressInput.RTMP_INPUT, name="logged", room_name="logs", participant_identity="cam"
            )
        )
        encoder = start_ffmpeg(TestPattern(duration=4), f"{peer.rtmp_url}/{info.stream_key}", tmp_path / "ff.log")
        try:
            encoder.wait(timeout=60)
        finally:
            stop(encoder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (state,) = (await client.ingress.list_ingress(api.ListIngressRequest(ingress_id=info.ingress_id))).items
            if state.state.resource_id and state.state.status == api.IngressState.ENDPOINT_INACTIVE:
                return info.ingress_id, state.state.resource_id
            await asyncio.sleep(0.2)
    raise AssertionError("the session did not end INACTIVE")


def _entries(peer: PyingressPeer) -> tuple[list[dict[str, Any]], list[str]]:
    entries, other = [], []
    for line in peer.log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every log line is one JSON object
        elif line.strip():
            other.append(line)
    return entries, other


async def test_json_lines_with_the_session_ids(pyingress_factory: Callable[..., PyingressPeer], tmp_path: Path) -> None:
    peer = pyingress_factory({"logging": {"level": "debug", "json": True}})
    ingress_id, resource_id = await _run_one_session(peer, tmp_path)
    entries, other = _entries(peer)
    # Besides the JSON lines only the banner, which is printed (stdout), not logged.
    assert other and other[0].startswith("pyingress ") and all(line.startswith(("  ", "Next:")) for line in other[1:])
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])
    session = [e for e in entries if e.get("resource_id") == resource_id]
    assert session and all(e["ingress_id"] == ingress_id for e in session)
    loggers = {e["logger"] for e in session}
    assert {"pyingress.session", "pyingress.publish"} & loggers, loggers
    # What the session itself says about its life carries the ids (begin, publishing, end).
    ending = [e for e in entries if e["logger"] == "pyingress.session" and f"session {resource_id} ended" in e["msg"]]
    assert ending and ending[0]["resource_id"] == resource_id
    # No per-packet or per-ICE-check chatter from the WebRTC stack at debug.
    assert not [e for e in entries if e["logger"].startswith(("aiortc", "aioice"))]


async def test_component_levels_turn_the_webrtc_stack_back_on(
    pyingress_factory: Callable[..., PyingressPeer], tmp_path: Path
) -> None:
    peer = pyingress_factory({"logging": {"level": "info", "json": True, "component_levels": {"aioice": "debug"}}})
    await _run_one_session(peer, tmp_path)
    entries, _ = _entries(peer)
    assert [e for e in entries if e["logger"].startswith("aioice")]
    assert not [e for e in entries if e["logger"].startswith("aiortc")]
