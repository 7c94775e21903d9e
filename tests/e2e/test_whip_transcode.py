"""End to end: WHIP with transcoding on — RTP depacketised into the session's media pipeline (a worker process),
the preset's ladder published; beyond livekit/ingress, a simulcast offer is taken and transcoded from its best
layer instead of refused."""

from collections.abc import Callable
from pathlib import Path

import pytest
from livekit import api, rtc

from tests.e2e.room_session import INACTIVE, PUBLISHING, Q_HIGH, Q_LOW, ingress_state, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whip-clips")


@pytest.mark.parametrize("simulcast", [False, True], ids=["single", "simulcast"])
async def test_whip_transcoded_publishes_the_presets_layers(
    simulcast: bool, pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    peer = pyingress_factory(LOOPBACK)
    room, identity = f"whip-transcode-{simulcast}", f"whip-transcode-{simulcast}"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, enable_transcoding=True)
        assert info.enable_transcoding
        layers = ((1280, 720), (640, 360)) if simulcast else ()
        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="vp8", simulcast=layers)
        try:
            response = await publisher.start()
            assert response.status == 201, response
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
                (video,) = report.tracks_of("video")
                (audio,) = report.tracks_of("audio")
                # The default preset (720p, 3 layers, H.264) whatever the publisher sent.
                assert video.simulcasted and video.mime_type == "video/H264"
                assert (video.width, video.height) == (1280, 720)
                assert audio.mime_type == "audio/opus"
                await wait_status(client, info.ingress_id, PUBLISHING)
                for quality, size in ((Q_HIGH, (1280, 720)), (Q_LOW, (320, 180))):
                    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
                    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"
                frames = await viewer.audio_frames(identity, frames=10)
                assert all(f.sample_rate == 48_000 for f in frames)
                state = await ingress_state(client, info.ingress_id)
                assert state.video.mime_type.lower() == "video/vp8" and (state.video.width, state.video.height) == (
                    1280,
                    720,
                )
        finally:
            await publisher.stop()
        state = await wait_status(client, info.ingress_id, INACTIVE, timeout=20)
        assert not state.error
