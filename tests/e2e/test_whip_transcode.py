"""End to end: WHIP with transcoding on — RTP depacketised into the session's media pipeline (a worker process),
the preset's ladder published; beyond livekit/ingress, a simulcast offer is taken and transcoded from its best
layer instead of refused."""

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from livekit import api, rtc

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from tests.e2e.room_session import INACTIVE, PUBLISHING, Q_HIGH, Q_LOW, ingress_state, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import LoopTrack, WhipPublisher, _capability, encode_video


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


@pytest.mark.parametrize("codec", ["PCMA", "PCMU"])
async def test_whip_g711_audio_is_transcoded_to_opus(
    codec: str, pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    """Beyond livekit/ingress (which negotiates PCMA but drops it): G.711 audio comes out as Opus."""
    peer = pyingress_factory(LOOPBACK)
    room = identity = f"whip-{codec.lower()}"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, enable_transcoding=True)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        video = LoopTrack("video", encode_video(clips, "h264", 640, 360))
        pc.addTransceiver(video, direction="sendonly").setCodecPreferences([_capability("video", "h264")])
        audio = pc.addTransceiver(AudioStreamTrack(), direction="sendonly")  # aiortc encodes it as G.711
        audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == codec])
        try:
            with gathering_from(LOOPBACK_ADDRESSES):
                await pc.setLocalDescription(await pc.createOffer())
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{info.url}/{info.stream_key}", data=pc.localDescription.sdp) as r,
            ):
                assert r.status == 201, await r.text()
                answer = await r.text()
            assert f"{codec}/8000" in answer
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                (track,) = report.tracks_of("audio")
                assert track.mime_type == "audio/opus"
                frames = await viewer.audio_frames(identity, frames=10)
                assert all(f.sample_rate == 48_000 for f in frames)
                state = await wait_status(client, info.ingress_id, PUBLISHING)
                assert state.audio.mime_type.lower() == f"audio/{codec.lower()}" and state.audio.sample_rate == 8000
        finally:
            await pc.close()
