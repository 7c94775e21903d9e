"""The input half of IngressState, named the way LiveKit names it."""

from livekit.protocol.ingress import InputAudioState, InputVideoState

from pyingress.media.input_state import InputStateTracker, mime_type
from pyingress.media.packets import StreamDescription


def test_mime_types() -> None:
    assert [mime_type("video", c) for c in ("h264", "hevc", "vp8", "vp9", "av1")] == [
        "video/H264",
        "video/H265",
        "video/VP8",
        "video/VP9",
        "video/AV1",
    ]
    assert [mime_type("audio", c) for c in ("aac", "opus", "mp3")] == ["audio/aac", "audio/opus", "audio/mpeg"]
    assert mime_type("video", "mpeg2video") == "video/mpeg2video"


def test_sizes_frame_rate_and_average_bitrate() -> None:
    tracker = InputStateTracker()
    tracker.on_stream(StreamDescription("video", "h264", width=1920, height=1080))
    tracker.on_stream(StreamDescription("audio", "aac", sample_rate=44100, channels=2))
    for i in range(61):  # 2 s at 30 fps, 10 kB a frame
        tracker.on_packet("video", 10_000, i * 1_000_000 // 30)
    for i in range(101):
        tracker.on_packet("audio", 240, i * 20_000)
    assert tracker.on_video_frame(1080, 1920)  # decoded, rotated display size wins
    assert not tracker.on_video_frame(1080, 1920)
    video, audio = tracker.snapshot()
    assert video is not None and audio is not None
    assert video.to_proto() == InputVideoState(
        mime_type="video/H264", width=1080, height=1920, framerate=30.0, average_bitrate=2_440_000
    )
    assert audio.to_proto() == InputAudioState(
        mime_type="audio/aac", channels=2, sample_rate=44100, average_bitrate=96_960
    )
