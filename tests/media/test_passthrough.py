"""Transcoding off: frames flow unchanged on the session clock, keyframes and codec parameters preserved."""

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from livekit.protocol.models import VideoQuality

from pyingress.media.bitstream import parse_avcc, split_annexb, split_length_prefixed
from pyingress.media.config import PipelineConfig
from pyingress.media.events import InputStateChanged, PipelineEnded, UpstreamKeyframeNeeded
from pyingress.media.pipeline import open_pipeline
from pyingress.media.presets import audio_preset, video_preset
from tests.media.media_helpers import Collector, Source, decode_video, demux, make_clip, push_all, seconds

PASS = PipelineConfig(video_preset(0), audio_preset(0), transcode=False)
HIGH = VideoQuality.HIGH


def _run(source: Source) -> Collector:
    collector = Collector()
    pipeline = open_pipeline(PASS, collector)
    push_all(pipeline, source)
    pipeline.end()
    pipeline.close()
    return collector


def test_h264_avcc_passes_with_its_slices_unchanged_in_annexb_and_sps_pps_before_every_idr(clips: Path) -> None:
    clip = make_clip(clips / "pass-h264.mp4", size="320x180", duration=2.0, audio=("-c:a", "libopus"))
    source = demux(clip)
    video_desc = next(d for d in source.streams if d.kind == "video")
    config = parse_avcc(video_desc.codec_config or b"")
    collector = _run(source)
    frames = collector.frames[HIGH]
    video_in = source.kind("video")
    assert len(frames) == len(video_in) == 60
    for packet, frame in zip(video_in, frames, strict=True):
        slices = split_length_prefixed(packet.data, config.length_size)
        units = split_annexb(frame.data)
        assert frame.keyframe == packet.keyframe
        if frame.keyframe:
            assert units[: len(config.parameter_sets)] == list(config.parameter_sets)
            units = units[len(config.parameter_sets) :]
        assert units == slices  # not re-encoded: the very same NAL units
    times = [seconds(frame) for frame in frames]
    assert times[0] < 0.01  # the session clock starts at the first packet (here Opus, 6.5 ms of pre-skip earlier)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([1 / 30] * 59, abs=0.002)
    decoded = decode_video("h264", frames)
    assert len(decoded) == 60 and (decoded[0].width, decoded[0].height) == (320, 180)
    assert (frames[0].width, frames[0].height) == (320, 180)  # from the SPS
    audio_in = source.kind("audio")
    assert [frame.data for frame in collector.frames["audio"]] == [packet.data for packet in audio_in]
    assert collector.of(PipelineEnded)
    state = collector.of(InputStateChanged)[-1]
    assert state.video is not None and state.audio is not None
    assert (state.video.mime_type, state.video.width, state.audio.mime_type) == ("video/H264", 320, "audio/opus")


def test_vp8_passes_byte_for_byte(clips: Path) -> None:
    clip = make_clip(
        clips / "pass-vp8.webm", size="320x180", duration=1.0, video=("-c:v", "libvpx", "-g", "10"), audio=None
    )
    source = demux(clip)
    collector = _run(source)
    frames = collector.frames[HIGH]
    assert [frame.data for frame in frames] == [packet.data for packet in source.kind("video")]
    assert [frame.keyframe for frame in frames] == [packet.keyframe for packet in source.kind("video")]
    assert (frames[0].codec, frames[0].width, frames[0].height) == ("vp8", 320, 180)


def test_b_frames_cannot_pass_and_say_so(clips: Path) -> None:
    clip = make_clip(
        clips / "pass-bframes.flv", size="320x180", duration=1.0, video=("-c:v", "libx264", "-bf", "2"), audio=None
    )
    collector = _run(demux(clip))
    assert collector.failure == (
        "the source has B-frames, which WebRTC cannot carry: enable transcoding for this ingress"
    )


def test_a_pli_is_forwarded_to_the_publisher_and_timestamps_are_normalised(clips: Path) -> None:
    clip = make_clip(clips / "pass-h264.mp4", size="320x180", duration=2.0, audio=("-c:a", "libopus"))
    source = demux(clip)
    later = [round(5 / p.time_base) for p in source.packets]  # the publisher's clock was at 5 s
    shifted = [replace(p, pts=p.pts + ticks, dts=p.dts + ticks) for p, ticks in zip(source.packets, later, strict=True)]
    collector = Collector()
    pipeline = open_pipeline(PASS, collector)
    push_all(pipeline, Source(source.streams, shifted))
    pipeline.request_keyframe(HIGH)
    pipeline.close()
    assert collector.of(UpstreamKeyframeNeeded)
    assert seconds(collector.frames[HIGH][0]) < 0.1 and seconds(collector.frames["audio"][0]) < 0.1


def test_codecs_webrtc_cannot_carry_are_refused(clips: Path) -> None:
    clip = make_clip(clips / "codec-h264+aac.flv", size="160x96", duration=1.0)
    collector = _run(demux(clip))
    assert collector.failure == "unsupported mime type for pass-through (audio aac): enable transcoding"
