"""Chaos: the media worker of a live session is killed, in a real room, as the OOM killer or a decoder bug would.

The session must carry on without the room noticing more than a freeze: the same participant and track sids,
frames again soon after the next keyframe; and a worker that keeps dying ends the session in ERROR, not a loop.
"""

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api

from tests.e2e.room_session import ERROR, PUBLISHING, create_rtmp_ingress, push, stop_encoder, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

PATTERN = TestPattern(width=640, height=360, duration=60)  # a keyframe every 2 s (ffmpeg's -g 60 at 30 fps)


async def _worker_pid(peer: PyingressPeer, resource_id: str, not_in: set[int], timeout: float = 10.0) -> int:
    pattern = re.compile(rf"session {re.escape(resource_id)}: media worker pid (\d+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(pid) for pid in pattern.findall(peer.log())]
        fresh = [pid for pid in pids if pid not in not_in]
        if fresh:
            return fresh[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new media worker logged for {resource_id}")


async def test_a_killed_worker_is_replaced_and_the_room_sees_only_a_freeze(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()
    room, identity = "chaos-worker", "enc-chaos-worker"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer:
            seen = viewer.record_participants()
            encoder = push(PATTERN, info, tmp_path / "ffmpeg.log")
            try:
                tracks = {t.sid for t in (await viewer.wait_tracks(identity, timeout=30)).tracks}
                sid = viewer.room.remote_participants[identity].sid
                await viewer.first_video_frame(identity)
                state = await wait_status(client, info.ingress_id, PUBLISHING)
                first = await _worker_pid(peer, state.resource_id, set())

                os.kill(first, signal.SIGKILL)
                killed_at = time.monotonic()
                await _worker_pid(peer, state.resource_id, {first})
                # Frames again within 2 s of the next keyframe (at most 2 s away): 4 s after the kill at the latest.
                frames = await viewer.video_sizes(identity, frames=10, settle=0.0, timeout=15)
                assert sum(frames.values()) == 10
                assert time.monotonic() - killed_at < 4.0 + 1.0  # and the subscription's own start-up

                assert viewer.room.remote_participants[identity].sid == sid
                assert {t.sid for t in viewer.report(viewer.room.remote_participants[identity]).tracks} == tracks
                assert [event[0] for event in seen if event[1] == identity] == ["connected"]  # never left
                assert (await wait_status(client, info.ingress_id, PUBLISHING)).resource_id == state.resource_id
            finally:
                stop_encoder(encoder)


async def test_a_worker_that_keeps_dying_ends_the_session_in_error(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()
    room, identity = "chaos-worker-loop", "enc-chaos-loop"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        encoder = push(PATTERN, info, tmp_path / "ffmpeg.log")
        try:
            state = await wait_status(client, info.ingress_id, PUBLISHING)
            killed: set[int] = set()
            for _ in range(4):
                pid = await _worker_pid(peer, state.resource_id, killed)
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            ended = await wait_status(client, info.ingress_id, ERROR, timeout=15)
            assert ended.error.startswith("media worker exited unexpectedly (killed by SIGKILL)")
        finally:
            stop_encoder(encoder)
