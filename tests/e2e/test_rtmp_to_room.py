"""End to end: an RTMP ingress created through the API, ffmpeg pushing, a LiveKit subscriber watching."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInput, IngressState, ListIngressRequest

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

Q_LOW, Q_MEDIUM, Q_HIGH = (
    rtc.VideoQuality.VIDEO_QUALITY_LOW,
    rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    rtc.VideoQuality.VIDEO_QUALITY_HIGH,
)


async def _status(client: api.LiveKitAPI, ingress_id: str) -> IngressState:
    listed = await client.ingress.list_ingress(ListIngressRequest(ingress_id=ingress_id))
    return listed.items[0].state


async def _wait_status(client: api.LiveKitAPI, ingress_id: str, status: int, timeout: float = 30) -> IngressState:
    deadline = time.monotonic() + timeout
    state = await _status(client, ingress_id)
    while state.status != status and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        state = await _status(client, ingress_id)
    assert state.status == status, f"expected {IngressState.Status.Name(status)}, got {state}"
    return state


async def _assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    # Generous: a new viewer is held on a low layer while the SFU estimates its bandwidth, longer on a busy CPU.
    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"


async def test_rtmp_ingress_publishes_simulcast_layers_into_the_room(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await client.ingress.create_ingress(
            CreateIngressRequest(
                input_type=IngressInput.RTMP_INPUT,
                name="e2e rtmp",
                room_name="e2e-rtmp",
                participant_identity="rtmp-encoder",
                participant_name="RTMP Encoder",
                participant_metadata='{"camera": 1}',
            )
        )
        assert info.url == peer.rtmp_url
        assert (await _status(client, info.ingress_id)).status == IngressState.ENDPOINT_INACTIVE

        encoder = start_ffmpeg(
            TestPattern(width=1280, height=720, fps=30, duration=25),
            f"{info.url}/{info.stream_key}",
            tmp_path / "ffmpeg.log",
        )
        try:
            token = livekit_server.token("viewer", "e2e-rtmp", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks("rtmp-encoder", timeout=30)
                assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
                assert (report.name, report.metadata) == ("RTMP Encoder", '{"camera": 1}')
                assert report.attributes["ingress.ingressID"] == info.ingress_id
                state = await _wait_status(client, info.ingress_id, IngressState.ENDPOINT_PUBLISHING)
                assert report.attributes.get("ingress.resourceID", state.resource_id) == state.resource_id
                assert state.resource_id.startswith("RT_") and state.room_id.startswith("RM_")
                (video,) = report.tracks_of("video")
                (audio,) = report.tracks_of("audio")
                assert video.simulcasted and video.mime_type == "video/H264"
                assert (video.width, video.height) == (1280, 720)
                assert audio.mime_type == "audio/opus"

                await _assert_layer(viewer, "rtmp-encoder", Q_HIGH, (1280, 720))
                await _assert_layer(viewer, "rtmp-encoder", Q_MEDIUM, (640, 360))
                await _assert_layer(viewer, "rtmp-encoder", Q_LOW, (320, 180))
                frames = await viewer.audio_frames("rtmp-encoder", frames=10, channels=2)
                assert all(f.sample_rate == 48_000 for f in frames)
                # The input the encoder sent is described in the state, as LiveKit does.
                state = await _status(client, info.ingress_id)
                assert state.video.mime_type == "video/H264"
                assert (state.video.width, state.video.height) == (1280, 720)
                assert state.audio.mime_type == "audio/aac" and state.audio.channels == 2
        finally:
            encoder.terminate()
            encoder.wait(timeout=10)
        # The encoder stopped: after the reconnect grace window the ingress is INACTIVE again, ended_at set.
        state = await _wait_status(client, info.ingress_id, IngressState.ENDPOINT_INACTIVE, timeout=30)
        assert state.ended_at >= state.started_at > 0 and not state.error
