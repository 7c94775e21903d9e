"""End to end, presets and custom options: what a room subscriber receives is exactly what the ingress asked for.

ffmpeg pushes RTMP into `pyingress serve`, which publishes into the deployment's livekit-server (every test runs in
standalone and in livekit mode: tests/e2e/conftest.py's ``deployment``); a `livekit` rtc SDK subscriber checks each
simulcast layer's decoded size, the video codec, and the audio: 48 kHz, and stereo or mono as configured — told
apart by content (a 440 Hz left / 1 kHz right source keeps its two tones in stereo and is mixed into identical
channels in mono) and by the TF_STEREO feature the server lists for the track.
"""

from pathlib import Path

import numpy as np
from google.protobuf import json_format
from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressAudioEncodingPreset,
    IngressAudioOptions,
    IngressVideoEncodingOptions,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)
from livekit.protocol.models import AudioTrackFeature, VideoCodec, VideoLayer, VideoQuality

from tests.e2e.room_session import (
    Q_HIGH,
    Q_LOW,
    Deployment,
    create_rtmp_ingress,
    push,
    room_participants,
    stop_encoder,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern
from tests.harness.pyingress_peer import REPO
from tests.harness.subscriber import RoomSubscriber

LEFT_HZ, RIGHT_HZ = 440, 1000


async def assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    seen = await viewer.sizes_until(identity, quality, size, timeout=20)
    assert seen[-15:] == [size] * 15, f"quality {VideoQuality.Name(quality)}: wanted {size}, saw {seen[-30:]}"


async def channel_tones(viewer: RoomSubscriber, identity: str) -> tuple[float, float, float]:
    """(left Hz, right Hz, max |L−R| / peak) over ~0.4 s of decoded 48 kHz stereo, after the decoder settled."""
    frames = await viewer.audio_frames(identity, frames=60, channels=2)
    assert all(f.sample_rate == 48_000 and f.num_channels == 2 for f in frames)
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16).reshape(-1, 2) for f in frames[20:]]).astype(float)
    peak = float(np.abs(pcm).max())
    assert peak > 1000, "no audible audio arrived"

    def dominant(channel: np.ndarray) -> float:
        return float(np.argmax(np.abs(np.fft.rfft(channel * np.hanning(len(channel))))) * 48_000 / len(channel))

    return dominant(pcm[:, 0]), dominant(pcm[:, 1]), float(np.abs(pcm[:, 0] - pcm[:, 1]).max()) / peak


async def assert_simulcast_video(
    viewer: RoomSubscriber, identity: str, mime: str, high: tuple[int, int], low: tuple[int, int]
) -> None:
    """One simulcast ``mime`` track at the top layer's size, whose HIGH and LOW layers decode at those sizes."""
    report = await viewer.wait_tracks(identity, timeout=30)
    (video,) = report.tracks_of("video")
    assert (video.mime_type, video.simulcasted, video.width, video.height) == (mime, True, *high)
    await assert_layer(viewer, identity, Q_HIGH, high)
    await assert_layer(viewer, identity, Q_LOW, low)


async def assert_mono(viewer: RoomSubscriber, livekit: LivekitPeer, room: str, identity: str) -> None:
    _, _, difference = await channel_tones(viewer, identity)
    assert difference < 0.05, "mono audio should reach both channels identically"
    assert not await audio_is_stereo(livekit, room, identity)


async def audio_is_stereo(livekit: LivekitPeer, room: str, identity: str) -> bool:
    (participant,) = [p for p in await room_participants(livekit, room) if p.identity == identity]
    (audio,) = [t for t in participant.tracks if t.type == 0]  # TrackType.AUDIO
    return AudioTrackFeature.TF_STEREO in audio.audio_features


async def test_540p_two_layer_preset_and_stereo_audio(deployment: Deployment, tmp_path: Path) -> None:
    await deployment.start()
    room, identity = "presets-540p", "enc-540p"
    async with deployment.api() as client:
        info = await create_rtmp_ingress(
            client,
            room,
            identity,
            video=IngressVideoOptions(preset=IngressVideoEncodingPreset.H264_540P_25FPS_2_LAYERS),
            audio=IngressAudioOptions(preset=IngressAudioEncodingPreset.OPUS_STEREO_96KBPS),
        )
    pattern = TestPattern(width=1280, height=720, duration=30, right_tone_hz=RIGHT_HZ)
    encoder = push(pattern, info, tmp_path / "ffmpeg.log")
    try:
        async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
            await assert_simulcast_video(viewer, identity, "video/H264", (960, 540), (480, 270))

            left, right, difference = await channel_tones(viewer, identity)
            assert abs(left - LEFT_HZ) < 30 and abs(right - RIGHT_HZ) < 30, (left, right)
            assert difference > 0.5
            assert await audio_is_stereo(deployment.livekit, room, identity)
    finally:
        stop_encoder(encoder)


async def test_seed_custom_single_1080p_layer_and_mono_options(deployment: Deployment, tmp_path: Path) -> None:
    """examples/rtmp-custom-options-ingress.json as a user would send it: one 1920×1080 layer, Opus mono 64 kb/s."""
    await deployment.start()
    request = json_format.Parse(
        (REPO / "examples/rtmp-custom-options-ingress.json").read_text(), CreateIngressRequest()
    )
    assert [(layer.width, layer.height) for layer in request.video.options.layers] == [(1920, 1080)]
    assert request.audio.options.channels == 1
    room, identity = "presets-custom-1080p", request.participant_identity
    request.room_name = room
    async with deployment.api() as client:
        info = await client.ingress.create_ingress(request)
    # 1080p on two shared cores: 15 fps at the source is enough to show the size and keeps the run short.
    pattern = TestPattern(width=1920, height=1080, fps=15, gop=30, duration=30, right_tone_hz=RIGHT_HZ)
    encoder = push(pattern, info, tmp_path / "ffmpeg.log")
    try:
        async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
            report = await viewer.wait_tracks(identity, timeout=30)
            (video,) = report.tracks_of("video")
            assert (video.mime_type, video.width, video.height) == ("video/H264", 1920, 1080)
            assert {t.name for t in report.tracks} == {"my-video", "my-audio"}
            assert not video.simulcasted  # one layer: nothing to choose, every frame is that layer
            sizes = await viewer.video_sizes(identity, frames=20, settle=0.5)
            assert sizes == {(1920, 1080): 20}, sizes
            await assert_mono(viewer, deployment.livekit, room, identity)
    finally:
        stop_encoder(encoder)


async def test_vp8_custom_layers_and_mono_preset(deployment: Deployment, tmp_path: Path) -> None:
    await deployment.start()
    room, identity = "presets-vp8", "enc-vp8"
    layers = [
        VideoLayer(quality=VideoQuality.HIGH, width=640, height=360, bitrate=800_000),
        VideoLayer(quality=VideoQuality.LOW, width=320, height=180, bitrate=250_000),
    ]
    async with deployment.api() as client:
        info = await create_rtmp_ingress(
            client,
            room,
            identity,
            enable_transcoding=True,
            video=IngressVideoOptions(options=IngressVideoEncodingOptions(video_codec=VideoCodec.VP8, layers=layers)),
            audio=IngressAudioOptions(preset=IngressAudioEncodingPreset.OPUS_MONO_64KBS),
        )
    encoder = push(TestPattern(width=1280, height=720, duration=30, right_tone_hz=RIGHT_HZ), info, tmp_path / "ff.log")
    try:
        async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
            await assert_simulcast_video(viewer, identity, "video/VP8", (640, 360), (320, 180))
            await assert_mono(viewer, deployment.livekit, room, identity)
    finally:
        stop_encoder(encoder)
