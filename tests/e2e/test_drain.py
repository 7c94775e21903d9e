"""Stopping `pyingress serve` as operators do: SIGTERM drains like livekit/ingress, SIGINT stops now, cleanly.

Real peers: ffmpeg pushing RTMP, livekit-server, a `livekit` SDK viewer counting frames, webhooks to a receiver.
"""

import asyncio
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from livekit import api

from pyingress.control.store import IngressStore
from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import INACTIVE, PUBLISHING, create_rtmp_ingress, push, stop_encoder, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern, ffmpeg_command
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _stored_state(peer: PyingressPeer, ingress_id: str) -> int:
    store = IngressStore(peer.config["store_path"])
    try:
        return store.load(ingress_id).state.status
    finally:
        store.close()


async def test_sigterm_refuses_new_publishes_and_exits_once_the_running_session_ends(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    # Small costs, so that the node still says "available" with this session running, until SIGTERM.
    peer = pyingress_factory({"reconnect_grace_seconds": 1, "cpu_cost": {"rtmp_cpu_cost": 0.1, "url_cpu_cost": 0.1}})
    assert peer.process is not None
    room, identity = "drain-term", "enc-drain"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        other = await create_rtmp_ingress(client, "drain-other", "enc-other")
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer:
            encoder = push(TestPattern(width=640, height=360, duration=14), info, tmp_path / "ffmpeg.log")
            try:
                await viewer.wait_tracks(identity, timeout=30)
                await viewer.first_video_frame(identity)
                await wait_status(client, info.ingress_id, PUBLISHING)

                availability = f"{peer.http_url}/availability"
                assert _status(availability) == 200
                peer.process.send_signal(signal.SIGTERM)
                took = await _until(lambda: _status(availability) == 503, 2, "/availability 503 after SIGTERM")
                assert took < 1.0

                # A new publisher is refused with LiveKit's words, and nothing is stored for it.
                pattern = TestPattern(width=320, height=240, fps=15, duration=2, realtime=False)
                refused = await asyncio.to_thread(
                    subprocess.run,
                    ffmpeg_command(pattern, f"{other.url}/{other.stream_key}"),
                    capture_output=True,
                    timeout=60,
                )
                assert refused.returncode != 0
                assert "server shutting down" in peer.log()
                assert (await client.ingress.list_ingress(api.ListIngressRequest(ingress_id=other.ingress_id))).items[
                    0
                ].state.status == INACTIVE

                # The running session keeps its frames, and the service keeps running for it.
                sizes = await viewer.video_sizes(identity, frames=45, settle=0.5, timeout=15)
                assert sum(sizes.values()) >= 45
                assert peer.process.poll() is None

                # ffmpeg ends its stream: the session ends, and with it the service, on its own and cleanly.
                assert await asyncio.to_thread(encoder.wait, 30) == 0
            finally:
                stop_encoder(encoder)
            code = await asyncio.to_thread(peer.process.wait, 30)
            assert code == 0, peer.log()[-3000:]
            await viewer.wait_gone(identity, timeout=10)
    assert _stored_state(peer, info.ingress_id) == INACTIVE


async def test_sigint_ends_a_running_session_cleanly_within_ten_seconds(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    sink = await WebhookSink(free_port()).start()
    peer = pyingress_factory({"webhook": {"api_key": "devkey", "urls": [sink.url]}})
    assert peer.process is not None
    room, identity = "drain-int", "enc-int"
    try:
        async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
            info = await create_rtmp_ingress(client, room, identity)
            async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer:
                encoder = push(TestPattern(width=640, height=360, duration=60), info, tmp_path / "ffmpeg.log")
                try:
                    await viewer.wait_tracks(identity, timeout=30)
                    await viewer.first_video_frame(identity)
                    await wait_status(client, info.ingress_id, PUBLISHING)
                    started = time.monotonic()
                    peer.process.send_signal(signal.SIGINT)
                    code = await asyncio.to_thread(peer.process.wait, 10)
                    assert code == 0 and time.monotonic() - started < 10
                    await viewer.wait_gone(identity, timeout=5)  # the participant left, it did not just vanish
                finally:
                    stop_encoder(encoder)
        assert _stored_state(peer, info.ingress_id) == INACTIVE
        received = await sink.wait_for(2, timeout=15)
        events = [r.event.event for r in received]
        assert events == ["ingress_started", "ingress_ended"]
        assert received[1].event.ingress_info.state.status == INACTIVE
    finally:
        await sink.stop()
