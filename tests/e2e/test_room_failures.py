"""End to end, the room server failing under a live session: it recovers, or ends in a clear ERROR — never stuck.

Each test has its own livekit-server (no Redis: its rooms die with it) and its own `pyingress serve`, so killing
the room server disturbs nothing else.  SIGKILL, not SIGTERM: a crash gives no leave, and is quicker than the
server's 10 s drain.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from livekit import api

from tests.e2e.room_session import (
    ERROR,
    PUBLISHING,
    create_rtmp_ingress,
    ingress_state,
    push,
    room_participants,
    status_name,
    stop_encoder,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=90)


@contextlib.asynccontextmanager
async def own_room_server(workdir: Path) -> AsyncIterator[tuple[LivekitPeer, PyingressPeer, api.LiveKitAPI]]:
    """A livekit-server of its own, `pyingress serve` publishing into it, and a client of pyingress's API."""
    livekit = await asyncio.to_thread(LivekitPeer(workdir).start)
    pyingress = PyingressPeer(workdir / "pyingress", livekit.ws_url)
    try:
        await asyncio.to_thread(pyingress.start)
        async with api.LiveKitAPI(pyingress.http_url, livekit.api_key, livekit.api_secret) as client:
            yield livekit, pyingress, client
    finally:
        await asyncio.to_thread(pyingress.stop)
        await asyncio.to_thread(livekit.stop)


def crash(livekit: LivekitPeer) -> None:
    process = livekit.server._process  # the harness has no kill(): SIGKILL it here
    assert process is not None
    process.kill()
    process.wait()
    livekit.stop()  # only cleans up now


async def test_room_server_restart_mid_stream_recovers_or_errors_clearly(tmp_path: Path) -> None:
    room, identity = "failures-restart", "enc-restart"
    async with own_room_server(tmp_path) as (livekit, pyingress, client):
        info = await create_rtmp_ingress(client, room, identity)
        encoder = push(SMALL, info, tmp_path / "ffmpeg.log")
        try:
            async with RoomSubscriber(livekit.ws_url, livekit.token("viewer", room)) as viewer:
                await viewer.wait_tracks(identity, timeout=30)
                await viewer.first_video_frame(identity)
                before = await wait_status(client, info.ingress_id, PUBLISHING)

                await asyncio.to_thread(crash, livekit)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(livekit.start)
            restarted = time.monotonic()

            # Within the publisher's rejoin budget (backoff 1 + 2 + 4 s plus the joins) the session is back
            # in the new server's room, or it has ended in ERROR: poll for one of the two.
            outcome = ""
            deadline = restarted + 40
            while not outcome and time.monotonic() < deadline:
                state = await ingress_state(client, info.ingress_id)
                present = [p for p in await room_participants(livekit, room) if p.identity == identity]
                if state.status == ERROR:
                    outcome = "error"
                elif state.status == PUBLISHING and present and len(present[0].tracks) == 2:
                    outcome = "recovered"
                else:
                    await asyncio.sleep(0.25)
            assert outcome, f"stuck in {status_name(state.status)} {state.error!r} 40 s after the restart"

            if outcome == "recovered":
                async with RoomSubscriber(livekit.ws_url, livekit.token("viewer-2", room)) as viewer:
                    report = await viewer.wait_tracks(identity, timeout=20)
                    assert {t.mime_type for t in report.tracks} == {"video/H264", "audio/opus"}
                    sizes = await viewer.video_sizes(identity, frames=30, settle=0.5, timeout=30)
                    assert sum(sizes.values()) == 30
                state = await ingress_state(client, info.ingress_id)
                # The same session carried on: the same resource, still publishing, into the new room.
                assert (state.status, state.resource_id) == (PUBLISHING, before.resource_id)
                assert encoder.poll() is None
            else:
                assert state.error == "room disconnected unexpectedly", state
                assert state.ended_at > 0
                assert await asyncio.to_thread(encoder.wait, 10) != 0  # the encoder was hung up on
        finally:
            stop_encoder(encoder)
        assert "Traceback" not in pyingress.log()


async def test_room_server_gone_for_good_ends_in_error(tmp_path: Path) -> None:
    room, identity = "failures-gone", "enc-gone"
    async with own_room_server(tmp_path) as (livekit, pyingress, client):
        info = await create_rtmp_ingress(client, room, identity)
        encoder = push(SMALL, info, tmp_path / "ffmpeg.log")
        try:
            await wait_status(client, info.ingress_id, PUBLISHING, timeout=30)
            await asyncio.to_thread(crash, livekit)
            crashed = time.monotonic()
            # Resume fails, then 3 rejoins (1, 2, 4 s apart) are refused: ERROR, with LiveKit's message.
            state = await wait_status(client, info.ingress_id, ERROR, timeout=60, interval=0.25)
            assert state.error == "room disconnected unexpectedly"
            assert state.ended_at > 0
            assert time.monotonic() - crashed < 30
            assert await asyncio.to_thread(encoder.wait, 10) != 0  # the encoder was hung up on
        finally:
            stop_encoder(encoder)
        assert "Traceback" not in pyingress.log()
