"""Every codec a front door can deliver decodes (and goes through the whole ladder); broken streams end clearly."""

from pathlib import Path

import pytest
from livekit.protocol.models import VideoQuality

from pyingress.media.config import PipelineConfig, PipelineError
from pyingress.media.decode import StreamDecoder
from pyingress.media.events import InputStateChanged
from pyingress.media.packets import StreamDescription
from pyingress.media.presets import audio_preset, video_preset
from tests.media.media_helpers import demux, make_clip, run_pipeline

SMALL = "160x96"

# (file, ffmpeg video args, ffmpeg audio args, expected input mime types)
CODECS = {
    "h264+aac": ("flv", ["-c:v", "libx264", "-bf", "2"], ["-c:a", "aac"], ("video/H264", "audio/aac")),
    "hevc+mp3": (
        "mkv",
        ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
        ["-c:a", "libmp3lame"],
        ("video/H265", "audio/mpeg"),
    ),
    "av1+opus": (
        "mkv",
        ["-c:v", "libaom-av1", "-cpu-used", "8", "-usage", "realtime", "-b:v", "200k"],
        ["-c:a", "libopus"],
        ("video/AV1", "audio/opus"),
    ),
    "vp8+opus": ("webm", ["-c:v", "libvpx", "-deadline", "realtime"], ["-c:a", "libopus"], ("video/VP8", "audio/opus")),
    "vp9+opus": (
        "webm",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        ["-c:a", "libopus"],
        ("video/VP9", "audio/opus"),
    ),
}


@pytest.mark.parametrize("name", list(CODECS))
def test_every_input_codec_decodes_into_the_ladder(clips: Path, name: str) -> None:
    extension, video, audio, (video_mime, audio_mime) = CODECS[name]
    clip = make_clip(
        clips / f"codec-{name}.{extension}",
        size=SMALL,
        duration=1.0,
        video=[*video, "-g", "15", "-pix_fmt", "yuv420p"],
        audio=audio,
    )
    run = run_pipeline(PipelineConfig(video_preset(0), audio_preset(0), max_queue_delay=None), demux(clip))
    collector = run.collector
    assert collector.failure is None
    assert collector.count(VideoQuality.LOW) == 30
    assert collector.count("audio") == pytest.approx(50, abs=3)
    state = collector.of(InputStateChanged)[-1]
    assert state.video is not None and state.audio is not None
    assert (state.video.mime_type, state.audio.mime_type) == (video_mime, audio_mime)
    assert (state.video.width, state.video.height) == (160, 96)


def test_one_damaged_packet_is_survived_a_run_of_them_is_not(clips: Path) -> None:
    source = demux(make_clip(clips / "1s.flv", duration=1.0))
    desc = next(d for d in source.streams if d.kind == "video")
    video = source.kind("video")
    decoder = StreamDecoder(desc, error_limit=5)
    garbage = b"\x00\x00\x00\x05\xff\xff\xff\xff\xff"  # one NAL unit of a type that does not exist
    decoder.decode(video[0].data, 0, 0)
    decoder.decode(garbage, 33_000, 33_000)
    assert decoder.errors == 1
    decoder.decode(video[1].data, 66_000, 66_000)
    assert decoder.consecutive_errors == 0
    with pytest.raises(PipelineError, match=r"video decoder \(h264\) failed: .* \(5 packets in a row\)"):
        for index in range(5):
            decoder.decode(garbage, 100_000 + index, 100_000 + index)


def test_an_unknown_codec_is_refused_with_its_name() -> None:
    with pytest.raises(PipelineError, match="unsupported video codec 'h266'"):
        StreamDecoder(StreamDescription("video", "h266"))
