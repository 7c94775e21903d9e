"""End to end: URL ingresses created through the API play a file served over HTTP into the room, in real time.

A local HTTP server (tests/harness/media_server.py) serves files Debian ffmpeg made in this run; pyingress pulls
them (a demux worker per ingress), transcodes and publishes; a `livekit` SDK subscriber checks what a viewer sees.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit import api, rtc
from livekit.protocol.ingress import DeleteIngressRequest

from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import (
    PUBLISHING,
    ingress_state,
    record_statuses,
    status_name,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.ports import free_port
from tests.harness.pull_media import make_file, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

Q_LOW, Q_MEDIUM, Q_HIGH = (
    rtc.VideoQuality.VIDEO_QUALITY_LOW,
    rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    rtc.VideoQuality.VIDEO_QUALITY_HIGH,
)
COMPLETE = "ENDPOINT_COMPLETE"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("url-media")


@pytest.fixture(scope="module")
def media_server(media_dir: Path) -> Iterator[MediaServer]:
    with MediaServer(media_dir) as server:
        yield server


CLIP_SECONDS = 24


async def _assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    seen = await viewer.sizes_until(identity, quality, size, timeout=20)
    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"


async def test_an_mp4_over_http_plays_its_layers_and_ends_complete(
    pyingress_factory: Callable[..., PyingressPeer],
    livekit_server: LivekitPeer,
    media_server: MediaServer,
    media_dir: Path,
) -> None:
    # Long enough for the three layer switches on a loaded machine: with 14 s, a CI run saw the file end (and the
    # participant leave) before the audio check after them.
    make_file(media_dir, "clip720.mp4", duration=CLIP_SECONDS)
    sink = await WebhookSink(free_port()).start()
    peer = pyingress_factory({"webhook": {"api_key": "devkey", "urls": [sink.url]}})
    room, identity = "url-mp4", "url-mp4-source"
    statuses: list[str] = []
    try:
        async with (
            api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
            RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
        ):
            created_at = time.monotonic()
            info = await client.ingress.create_ingress(
                url_request(media_server.file_url("clip720.mp4"), room, identity)
            )
            recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))
            try:
                # The session starts with the create: BUFFERING in the answer, a URL resource id.
                assert info.state.status == 1 and info.state.resource_id.startswith("UR_"), info.state
                assert not info.reusable and info.stream_key == ""
                first_frame_at, _ = await viewer.first_video_frame(identity, timeout=20)
                report = await viewer.wait_tracks(identity, timeout=10)
                assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
                assert report.attributes["ingress.ingressID"] == info.ingress_id
                (video,) = report.tracks_of("video")
                (audio,) = report.tracks_of("audio")
                assert video.simulcasted and video.mime_type == "video/H264"
                assert (video.width, video.height) == (1280, 720)
                assert audio.mime_type == "audio/opus"
                state = await wait_status(client, info.ingress_id, PUBLISHING, timeout=5)
                assert state.video.mime_type == "video/H264" and (state.video.width, state.video.height) == (1280, 720)
                assert state.audio.mime_type == "audio/aac" and state.audio.channels == 2

                frames = await viewer.audio_frames(identity, frames=10, channels=2)
                assert all(f.sample_rate == 48_000 for f in frames)
                await _assert_layer(viewer, identity, Q_HIGH, (1280, 720))
                await _assert_layer(viewer, identity, Q_MEDIUM, (640, 360))
                await _assert_layer(viewer, identity, Q_LOW, (320, 180))

                # Real time: the file ends about its length after it started, not when it was downloaded.
                await viewer.wait_gone(identity, timeout=30)
                played = time.monotonic() - first_frame_at
                assert CLIP_SECONDS - 3 <= played <= CLIP_SECONDS + 4, played
                async with asyncio.timeout(10):
                    while not statuses or statuses[-1] != COMPLETE:
                        await asyncio.sleep(0.05)
            finally:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder
            state = await ingress_state(client, info.ingress_id)
            assert state.ended_at >= state.started_at > 0 and not state.error
            assert statuses[-2:] == ["ENDPOINT_PUBLISHING", COMPLETE], statuses
            print(f"create → first frame {first_frame_at - created_at:.2f} s, played {played:.1f} s")

        received = await sink.wait_for(2, timeout=15)
        events = [(r.event.event, status_name(r.event.ingress_info.state.status)) for r in received]
        assert events == [("ingress_started", "ENDPOINT_PUBLISHING"), ("ingress_ended", COMPLETE)]
        assert sink.refused == []
    finally:
        await sink.stop()
        peer.stop()


async def test_delete_during_playback_makes_the_participant_leave(
    pyingress_factory: Callable[..., PyingressPeer],
    livekit_server: LivekitPeer,
    media_server: MediaServer,
    media_dir: Path,
) -> None:
    make_file(media_dir, "clip720.mp4", duration=CLIP_SECONDS)
    peer = pyingress_factory()
    room, identity = "url-delete", "url-delete-source"
    async with (
        api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
        RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
    ):
        info = await client.ingress.create_ingress(url_request(media_server.file_url("clip720.mp4"), room, identity))
        await viewer.first_video_frame(identity, timeout=20)
        deleted = await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
        asked = time.monotonic()
        assert deleted.state.status == 0  # INACTIVE
        await viewer.wait_gone(identity, timeout=10)
        assert time.monotonic() - asked <= 2.0
    # The worker is gone with the session: nothing of it is left running under the service.
    await asyncio.sleep(0.5)
    assert "URL pull" in peer.log()
    peer.stop()
