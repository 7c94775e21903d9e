"""End to end: every container the reference allows, made by Debian ffmpeg and served over HTTP (one over HTTPS with
a test CA), plays into the room with the right tracks and layer sizes and ends COMPLETE with ``ingress_ended``;
a container the reference does not allow ends in ERROR with its words."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from livekit import api, rtc
from livekit.protocol.webhook import WebhookEvent

from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import ERROR, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.ports import free_port
from tests.harness.pull_media import make_file, make_rotated, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

COMPLETE = 4
DURATION = 4.0


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("url-containers")


@pytest.fixture(scope="module")
def http_server(media_dir: Path) -> Iterator[MediaServer]:
    with MediaServer(media_dir) as server:
        yield server


@pytest.fixture(scope="module")
def https_server(media_dir: Path) -> Iterator[MediaServer]:
    with MediaServer(media_dir, tls=True) as server:
        yield server


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink(free_port()).start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
def peer(
    pyingress_factory: Callable[..., PyingressPeer], https_server: MediaServer, sink: WebhookSink
) -> PyingressPeer:
    assert https_server.cert_path is not None  # the test CA: trusted through url_pull.ca_file
    return pyingress_factory(
        {"webhook": {"api_key": "devkey", "urls": [sink.url]}, "url_pull": {"ca_file": str(https_server.cert_path)}}
    )


async def _play(
    peer: PyingressPeer, livekit_server: LivekitPeer, sink: WebhookSink, url: str, room: str, kinds: tuple[str, ...]
) -> None:
    identity = f"{room}-source"
    async with (
        api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
        RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
    ):
        info = await client.ingress.create_ingress(url_request(url, room, identity))
        report = await viewer.wait_tracks(identity, kinds=kinds, timeout=20)
        assert sorted(t.kind for t in report.tracks) == sorted(kinds)
        if "video" in kinds:
            (video,) = report.tracks_of("video")
            assert video.mime_type == "video/H264" and (video.width, video.height) == (640, 360)
            # A 360p source fills the preset's two lowest layers; the subscriber's best quality is the source size.
            sizes = await viewer.video_sizes(identity, rtc.VideoQuality.VIDEO_QUALITY_HIGH, frames=10, settle=0.5)
            assert set(sizes) <= {(640, 360), (320, 180)} and sum(sizes.values()) == 10, sizes
        if "audio" in kinds:
            (audio,) = report.tracks_of("audio")
            assert audio.mime_type == "audio/opus"
            frames = await viewer.audio_frames(identity, frames=10, channels=2)
            assert all(f.sample_rate == 48_000 for f in frames)
        state = await wait_status(client, info.ingress_id, COMPLETE, timeout=DURATION + 15)
        assert not state.error and state.resource_id.startswith("UR_")
        await viewer.wait_gone(identity, timeout=5)
    async with asyncio.timeout(10):
        while not (ended := _ended_events(sink, info.ingress_id)):
            await asyncio.sleep(0.05)
    assert [e.ingress_info.state.status for e in ended] == [COMPLETE]


def _ended_events(sink: WebhookSink, ingress_id: str) -> list[WebhookEvent]:
    return [
        r.event
        for r in sink.received
        if r.event.ingress_info.ingress_id == ingress_id and r.event.event == "ingress_ended"
    ]


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("clip.mov", ("audio", "video")),  # H.264 + AAC in QuickTime
        ("clip.mkv", ("audio", "video")),  # VP9 + Opus
        ("clip.webm", ("audio", "video")),  # VP8 + Vorbis
        ("clip.ts", ("audio", "video")),  # MPEG-TS H.264 + AAC
        ("audio.ogg", ("audio",)),  # Vorbis
        ("audio.mp3", ("audio",)),
        ("audio.m4a", ("audio",)),  # AAC in MP4
    ],
)
async def test_each_allowed_container_plays_and_ends_complete(
    peer: PyingressPeer,
    livekit_server: LivekitPeer,
    http_server: MediaServer,
    sink: WebhookSink,
    media_dir: Path,
    name: str,
    kinds: tuple[str, ...],
) -> None:
    make_file(media_dir, name, duration=DURATION, size="640x360")
    room = "url-" + name.replace(".", "-")
    await _play(peer, livekit_server, sink, http_server.file_url(name), room, kinds)


async def test_https_with_a_test_ca_plays(
    peer: PyingressPeer, livekit_server: LivekitPeer, https_server: MediaServer, sink: WebhookSink, media_dir: Path
) -> None:
    make_file(media_dir, "clip.ts", duration=DURATION, size="640x360")
    await _play(peer, livekit_server, sink, https_server.file_url("clip.ts"), "url-https", ("audio", "video"))


async def test_a_rotated_mp4_is_published_upright(
    peer: PyingressPeer, livekit_server: LivekitPeer, http_server: MediaServer, media_dir: Path
) -> None:
    rotated = make_rotated(media_dir, make_file(media_dir, "clip.mov", duration=DURATION, size="640x360"))
    room, identity = "url-rotated", "url-rotated-source"
    async with (
        api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
        RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
    ):
        info = await client.ingress.create_ingress(url_request(http_server.file_url(rotated.name), room, identity))
        report = await viewer.wait_tracks(identity, timeout=20)
        (video,) = report.tracks_of("video")
        assert (video.width, video.height) == (360, 640)  # the display matrix turned the 640x360 pictures
        sizes = await viewer.video_sizes(identity, rtc.VideoQuality.VIDEO_QUALITY_HIGH, frames=10, settle=0.5)
        assert set(sizes) <= {(360, 640), (180, 320)}, sizes
        await wait_status(client, info.ingress_id, COMPLETE, timeout=DURATION + 15)


async def test_a_container_the_reference_refuses_ends_in_its_words(
    peer: PyingressPeer, livekit_server: LivekitPeer, http_server: MediaServer, media_dir: Path
) -> None:
    make_file(media_dir, "clip.flv", duration=2, size="320x180")
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await client.ingress.create_ingress(url_request(http_server.file_url("clip.flv"), "url-flv", "flv"))
        state = await wait_status(client, info.ingress_id, ERROR, timeout=10)
    assert state.error == "unsupported mime type (video/x-flv) for the source media"
