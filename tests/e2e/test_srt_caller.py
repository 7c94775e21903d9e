"""End to end: an ``srt://`` URL ingress pulls from an SRT server (srt-live-transmit in listener mode, fed by
ffmpeg) into a room; the server restarted mid-stream is called again, gone for good ends in ERROR; URLs that cannot
work are refused at CreateIngress, an unknown host ends at once."""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit import api
from livekit.protocol.ingress import DeleteIngressRequest

from tests.e2e.room_session import (
    ERROR,
    INACTIVE,
    PUBLISHING,
    Q_HIGH,
    Q_LOW,
    Q_MEDIUM,
    ingress_state,
    record_statuses,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_udp_port
from tests.harness.publishers import TestPattern
from tests.harness.pull_media import url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.srt_publishers import SrtLiveTransmit
from tests.harness.subscriber import RoomSubscriber

MEDIA_TIMEOUT = 8.0  # srt.pull_media_timeout for these tests (60 s by default, as livekit/ingress)


@contextlib.contextmanager
def srt_server(pattern: TestPattern, port: int, log_path: Path, **options: object) -> Iterator[list[SrtLiveTransmit]]:
    """srt-live-transmit listening on ``port``, serving ffmpeg's MPEG-TS; the list holds the running one."""
    servers = [SrtLiveTransmit(pattern, port, "", log_path, listener=True, **options)]  # type: ignore[arg-type]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def _assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"


async def test_a_url_ingress_pulls_srt_into_the_room_and_survives_a_server_restart(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory({"srt": {"pull_media_timeout": MEDIA_TIMEOUT}})
    port = free_udp_port()
    pattern = TestPattern(width=1280, height=720, fps=30, duration=120, gop=30)
    statuses: list[str] = []
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        with srt_server(pattern, port, tmp_path / "server-1.log") as servers:
            url = f"srt://127.0.0.1:{port}?latency=200&streamid=feed"
            info = await client.ingress.create_ingress(url_request(url, "e2e-srt-caller", "srt-feed"))
            assert info.url == url
            token = livekit_server.token("viewer", "e2e-srt-caller", can_publish=False)
            recorder = None
            try:
                async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                    seen = viewer.record_participants()
                    await viewer.wait_tracks("srt-feed", timeout=30)
                    sid = viewer.room.remote_participants["srt-feed"].sid
                    await _assert_layer(viewer, "srt-feed", Q_HIGH, (1280, 720))
                    await _assert_layer(viewer, "srt-feed", Q_MEDIUM, (640, 360))
                    await _assert_layer(viewer, "srt-feed", Q_LOW, (320, 180))
                    state = await wait_status(client, info.ingress_id, PUBLISHING)
                    assert state.resource_id.startswith("UR_")
                    recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))

                    # The server goes away and comes back on the same port: the pull calls again, same session.
                    servers.pop().stop()
                    await asyncio.sleep(2.0)
                    servers.append(SrtLiveTransmit(pattern, port, "", tmp_path / "server-2.log", listener=True))
                    sizes = await viewer.video_sizes("srt-feed", frames=30, settle=3.0, timeout=30)
                    assert sum(sizes.values()) == 30
                    # One participant all along: no leave, no second join (it may have joined before the viewer,
                    # since a session joins the room as it starts).
                    assert set(seen) <= {("connected", "srt-feed", sid)}, seen
                    again = await ingress_state(client, info.ingress_id)
                    assert (again.status, again.resource_id) == (PUBLISHING, state.resource_id)

                    # Gone for good: no media for srt.pull_media_timeout → ERROR, the participant leaves.
                    servers.pop().stop()
                    await viewer.wait_gone("srt-feed", timeout=MEDIA_TIMEOUT + 20)
                    ended = await wait_status(client, info.ingress_id, ERROR, timeout=10)
                    assert ended.error.startswith("source encoder not ready"), ended.error
                    assert f"srt://127.0.0.1:{port}" in ended.error and "no media for" in ended.error
            finally:
                if recorder is not None:
                    recorder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recorder
    assert "ENDPOINT_INACTIVE" not in statuses  # the restart never ended the session
    assert "connected to srt://127.0.0.1" in peer.log() and "(connection 2)" in peer.log()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("srt://127.0.0.1:99999", "invalid SRT URL: Port out of range 0-65535"),
        ("srt://127.0.0.1:9000?mode=listener", "invalid SRT URL: mode=listener"),
        ("srt://127.0.0.1:9000?passphrase=short", "invalid SRT URL: passphrase must be 10 to 79 characters"),
    ],
)
async def test_urls_that_cannot_work_are_refused_at_create(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, url: str, words: str
) -> None:
    peer = pyingress_factory()
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        with pytest.raises(api.TwirpError) as refused:
            await client.ingress.create_ingress(url_request(url, "e2e-srt-bad-url", "nobody"))
        assert words in refused.value.message and refused.value.code == "invalid_argument", refused.value
        listed = await client.ingress.list_ingress(api.ListIngressRequest(room_name="e2e-srt-bad-url"))
        assert list(listed.items) == []  # nothing stored


async def test_an_unknown_host_ends_in_error_at_once_and_nobody_there_after_the_media_timeout(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer
) -> None:
    peer = pyingress_factory({"srt": {"pull_media_timeout": MEDIA_TIMEOUT}})
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        unknown = await client.ingress.create_ingress(
            url_request("srt://no-such-host.invalid:9000", "e2e-srt-unknown", "nobody")
        )
        nobody = await client.ingress.create_ingress(
            url_request(f"srt://127.0.0.1:{free_udp_port()}?conntimeo=500", "e2e-srt-nobody", "nobody")
        )
        state = await wait_status(client, unknown.ingress_id, ERROR, timeout=10)
        assert state.error.startswith("cannot resolve no-such-host.invalid"), state.error
        state = await wait_status(client, nobody.ingress_id, ERROR, timeout=MEDIA_TIMEOUT + 15)
        assert state.error.startswith("source encoder not ready"), state.error
        assert "connection timed out" in state.error, state.error
    assert "calling again in" in peer.log()


async def test_delete_ingress_stops_a_pull_at_once(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()
    port = free_udp_port()
    room, identity = "e2e-srt-caller-delete", "srt-delete"
    with srt_server(TestPattern(width=640, height=360, duration=60), port, tmp_path / "server.log"):
        async with (
            api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
            RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
        ):
            info = await client.ingress.create_ingress(url_request(f"srt://127.0.0.1:{port}", room, identity))
            await viewer.first_video_frame(identity, timeout=30)
            deleted = await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            asked = time.monotonic()
            assert deleted.state.status == INACTIVE
            await viewer.wait_gone(identity, timeout=10)
            assert time.monotonic() - asked <= 2.0
    await asyncio.sleep(0.5)
    assert "calling again" not in peer.log()  # closed, not retried
