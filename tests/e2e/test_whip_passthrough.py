"""End to end: a WHIP ingress created through the API, aiortc publishing over real ICE/DTLS/SRTP, a LiveKit
subscriber in the room, pass-through (WHIP's default): the publisher's frames reach the viewer untouched."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, IngressInput

from tests.e2e.room_session import (
    BUFFERING,
    INACTIVE,
    PUBLISHING,
    Q_HIGH,
    Q_LOW,
    Q_MEDIUM,
    ingress_state,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher

# WHIP tests need no SRT listener (its fixed default port may be taken by another pyingress on this machine).
LOOPBACK = {"rtc_config": {"enable_loopback_candidate": True}, "srt_port": -1}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whip-clips")


@pytest.fixture(scope="module")
def whip_peer(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory(LOOPBACK)


async def create_whip_ingress(client: api.LiveKitAPI, room: str, identity: str, **fields: Any) -> IngressInfo:
    request = CreateIngressRequest(
        input_type=IngressInput.WHIP_INPUT, name=room, room_name=room, participant_identity=identity, **fields
    )
    return await client.ingress.create_ingress(request)


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_whip_passthrough_reaches_the_room_and_ends_on_delete(
    codec: str, whip_peer: PyingressPeer, livekit_server: LivekitPeer, clips: Path
) -> None:
    room, identity = f"whip-pass-{codec}", f"whip-{codec}"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, participant_name="WHIP Publisher")
        assert info.url == f"{whip_peer.http_url}/w" and not info.enable_transcoding
        assert (await ingress_state(client, info.ingress_id)).status == INACTIVE

        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video=codec, size=(640, 360))
        try:
            response = await publisher.start()
            assert response.status == 201, response
            assert response.headers["Content-Type"].startswith("application/sdp")
            assert publisher.location is not None and publisher.location.startswith(f"/w/{info.stream_key}/WH_")
            assert len(response.headers["ETag"]) == 8
            state = await ingress_state(client, info.ingress_id)
            assert state.status in (BUFFERING, PUBLISHING) and state.resource_id == publisher.location.split("/")[-1]

            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
                assert report.name == "WHIP Publisher"
                (video,) = report.tracks_of("video")
                (audio,) = report.tracks_of("audio")
                assert video.mime_type == f"video/{'H264' if codec == 'h264' else 'VP8'}"
                assert (video.width, video.height) == (640, 360)
                assert audio.mime_type == "audio/opus"
                await wait_status(client, info.ingress_id, PUBLISHING)
                sizes = await viewer.video_sizes(identity, frames=20, settle=0.5)
                assert set(sizes) == {(640, 360)}, sizes
                frames = await viewer.audio_frames(identity, frames=10)
                assert all(f.sample_rate == 48_000 for f in frames)

                assert await publisher.delete() == 200
                state = await wait_status(client, info.ingress_id, INACTIVE, timeout=15)
                assert not state.error and state.ended_at >= state.started_at > 0
                await viewer.wait_gone(identity, timeout=10)
        finally:
            await publisher.close()


async def test_whip_simulcast_passthrough_is_one_track_whose_layers_the_viewer_switches(
    whip_peer: PyingressPeer, livekit_server: LivekitPeer, clips: Path
) -> None:
    """Three rid layers in (f, h, q: HIGH, MEDIUM, LOW), one simulcast track out; asking each quality yields its
    own size — the layer switching livekit/ingress's pass-through cannot do (its issue #352)."""
    room, identity = "whip-simulcast", "whip-simulcast"
    layers = ((1280, 720), (640, 360), (320, 180))
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity)
        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", simulcast=layers)
        try:
            response = await publisher.start()
            assert response.status == 201, response
            assert "a=simulcast:recv f;h;q" in response.body
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                (video,) = report.tracks_of("video")
                assert len(report.tracks_of("audio")) == 1
                assert video.simulcasted and (video.width, video.height) == (1280, 720)
                await wait_status(client, info.ingress_id, PUBLISHING)
                for quality, size in zip((Q_HIGH, Q_MEDIUM, Q_LOW), layers, strict=True):
                    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
                    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"
                state = await ingress_state(client, info.ingress_id)
                assert (state.video.width, state.video.height) == (1280, 720)
        finally:
            await publisher.stop()
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)
