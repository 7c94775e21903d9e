"""Chaos around a live session: garbage on every port, one publisher too many, the room deleted under it.

Each case asserts what a user would check: the running session's frames at a real subscriber, the state through the
API with LiveKit's words, and nothing left behind in the service (its file descriptors).
"""

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api
from livekit.protocol.room import DeleteRoomRequest

from tests.e2e.room_session import (
    ERROR,
    INACTIVE,
    PUBLISHING,
    create_rtmp_ingress,
    ingress_state,
    push,
    stop_encoder,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern, ffmpeg_command
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=60)


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _garbage(port: int, seed: int) -> None:
    """One connection that says nonsense (or nothing), then goes; refusals and resets are what we expect."""
    noise = random.Random(seed)
    lying_request = b"GET /twirp/livekit.Ingress/ListIngress HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=3) as connection:
        if seed % 3:
            connection.sendall(bytes(noise.getrandbits(8) for _ in range(noise.randint(1, 4096))))
        if seed % 5 == 0:
            connection.sendall(lying_request)
        connection.settimeout(0.5)
        connection.recv(1024)


async def _frames_keep_coming(viewer: RoomSubscriber, identity: str) -> None:
    sizes = await viewer.video_sizes(identity, frames=30, settle=0.0, timeout=15)
    assert sum(sizes.values()) == 30


async def test_fifty_garbage_connections_on_every_port_disturb_nothing(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    metrics_port, health_port = free_port(), free_port()
    peer = pyingress_factory({"prometheus_port": metrics_port, "health_port": health_port})
    assert peer.process is not None
    ports = [peer.config["rtmp_port"], peer.config["whip_port"], metrics_port, health_port]
    room, identity = "chaos-garbage", "enc-garbage"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer:
            encoder = push(SMALL, info, tmp_path / "ffmpeg.log")
            try:
                await viewer.wait_tracks(identity, timeout=30)
                await viewer.first_video_frame(identity)
                await wait_status(client, info.ingress_id, PUBLISHING)
                await asyncio.sleep(1.0)  # the session's own descriptors are all open by now
                before = _open_fds(peer.process.pid)

                flood = [asyncio.to_thread(_garbage, port, seed) for port in ports for seed in range(50)]
                await asyncio.gather(*flood, _frames_keep_coming(viewer, identity))
                await _frames_keep_coming(viewer, identity)

                assert (await ingress_state(client, info.ingress_id)).status == PUBLISHING
                assert peer.process.poll() is None
                # Every garbage connection is gone again (the RTMP handshake timeout is the slowest to notice).
                deadline = time.monotonic() + 20
                while _open_fds(peer.process.pid) > before + 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert _open_fds(peer.process.pid) <= before + 2
            finally:
                stop_encoder(encoder)


async def test_one_publisher_beyond_capacity_is_refused_and_the_others_go_on(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    # Two sessions fit: 2 CPUs × (1 − 0.3/2) = 1.7 for push sessions at 0.8 each.
    peer = pyingress_factory({"cpu_cost": {"rtmp_cpu_cost": 0.8, "min_idle_ratio": 0.3}})
    rooms = [("chaos-cap-1", "enc-cap-1"), ("chaos-cap-2", "enc-cap-2"), ("chaos-cap-3", "enc-cap-3")]
    encoders: list[subprocess.Popen[bytes]] = []
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        infos = [await create_rtmp_ingress(client, room, identity) for room, identity in rooms]
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", rooms[0][0])) as viewer:
            try:
                for n, info in enumerate(infos[:2]):
                    encoders.append(push(SMALL, info, tmp_path / f"ffmpeg-{n}.log"))
                    await wait_status(client, info.ingress_id, PUBLISHING)
                await viewer.first_video_frame(rooms[0][1])

                pattern = TestPattern(width=320, height=240, fps=15, duration=2, realtime=False)
                extra = infos[2]
                refused = await asyncio.to_thread(
                    subprocess.run, ffmpeg_command(pattern, f"{extra.url}/{extra.stream_key}"), capture_output=True
                )
                assert refused.returncode != 0
                state = await ingress_state(client, extra.ingress_id)
                assert (state.status, state.error) == (ERROR, "server capacity exceeded")

                await _frames_keep_coming(viewer, rooms[0][1])
                for info in infos[:2]:
                    assert (await ingress_state(client, info.ingress_id)).status == PUBLISHING
            finally:
                for encoder in encoders:
                    stop_encoder(encoder)


async def test_the_room_deleted_under_a_session_ends_it_in_words_and_hangs_up(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()
    room, identity = "chaos-room-deleted", "enc-room-deleted"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        encoder = push(SMALL, info, tmp_path / "ffmpeg.log")
        try:
            await wait_status(client, info.ingress_id, PUBLISHING)
            async with livekit_server.api() as server:
                await server.room.delete_room(DeleteRoomRequest(room=room))
            state = await wait_status(client, info.ingress_id, ERROR, timeout=15)
            assert state.error == "room disconnected"
            await asyncio.to_thread(encoder.wait, 15)  # the encoder was hung up on: it ends by itself
            assert encoder.returncode is not None
            # The key is not spoiled: the next publisher gets a new session.
            again = push(TestPattern(width=320, height=240, duration=3), info, tmp_path / "ffmpeg-2.log")
            try:
                await wait_status(client, info.ingress_id, PUBLISHING)
            finally:
                stop_encoder(again)
            await wait_status(client, info.ingress_id, INACTIVE, timeout=30)
        finally:
            stop_encoder(encoder)
