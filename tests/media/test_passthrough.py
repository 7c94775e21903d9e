"""Transcoding off: frames flow unchanged on the session clock, keyframes and codec parameters preserved."""

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from livekit.protocol.models import VideoQuality

from pyingress.media.bitstream import (
    h264_sps_size,
    is_length_prefixed_config,
    parse_avcc,
    split_annexb,
    split_length_prefixed,
)
from pyingress.media.config import PipelineConfig
from pyingress.media.events import InputStateChanged, PipelineEnded, UpstreamKeyframeNeeded
from pyingress.media.layer_plan import PlannedLayer
from pyingress.media.packets import EncodedPacket, OutputFrame
from pyingress.media.passthrough import PassthroughPipeline
from pyingress.media.pipeline import open_pipeline
from pyingress.media.presets import audio_preset, video_preset
from tests.media.media_helpers import (
    Collector,
    MediaClock,
    Source,
    decode_video,
    demux,
    in_time_base,
    make_clip,
    push_all,
    seconds,
    simulcast,
    sps_of,
)

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
    assert collector.layers.layers == (PlannedLayer(HIGH, 320, 180, 0),)  # a single layer is published as HIGH


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
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(None)]  # the source's only layer
    assert seconds(collector.frames[HIGH][0]) < 0.1 and seconds(collector.frames["audio"][0]) < 0.1


def test_codecs_webrtc_cannot_carry_are_refused(clips: Path) -> None:
    clip = make_clip(clips / "codec-h264+aac.flv", size="160x96", duration=1.0)
    collector = _run(demux(clip))
    assert collector.failure == "unsupported mime type for pass-through (audio aac): enable transcoding"


# Simulcast: three layers of one picture, as a WHIP publisher sends them (rids HIGH, MEDIUM, LOW), keyframes every
# 10 frames at 30 fps for 2 s.
LOW, MEDIUM = VideoQuality.LOW, VideoQuality.MEDIUM
SIZES: dict[int, tuple[int, int]] = {HIGH: (640, 360), MEDIUM: (320, 180), LOW: (160, 90)}
H264_BASELINE = (
    *("-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p"),
    *("-g", "10", "-keyint_min", "10", "-sc_threshold", "0"),
)
VP8 = ("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-g", "10", "-keyint_min", "10", "-b:v", "400k")
# container → H.264 framing: MP4 gives AVCC with an avcC record, MPEG-TS Annex-B with SPS/PPS in band
FLAVOURS = {"h264-avcc": ("mp4", H264_BASELINE), "h264-annexb": ("ts", H264_BASELINE), "vp8": ("webm", VP8)}


def _layer_clip(clips: Path, flavour: str, quality: int) -> Source:
    extension, video = FLAVOURS[flavour]
    width, height = SIZES[quality]
    path = clips / f"simulcast-{flavour}-{width}x{height}.{extension}"
    source = demux(make_clip(path, size=f"{width}x{height}", duration=2.0, video=video, audio=None))
    assert [i for i, p in enumerate(source.packets) if p.keyframe] == [0, 10, 20, 30, 40, 50]
    if flavour == "h264-avcc":
        assert is_length_prefixed_config(source.streams[0].codec_config)
    else:  # as a WHIP door describes a layer: no size, no parameter sets; the bitstream tells
        source.streams = [replace(desc, width=0, height=0, codec_config=None) for desc in source.streams]
    return source


def _simulcast(clips: Path, flavour: str) -> Source:
    return simulcast({quality: _layer_clip(clips, flavour, quality) for quality in (HIGH, MEDIUM, LOW)})


def _index(frame: OutputFrame) -> int:
    """Which of the 30 fps pictures this is (every layer's clock starts at 0 on the session timeline)."""
    return round(seconds(frame) * 30)


def _packet_index(packet: EncodedPacket, source: Source) -> int:
    first = source.packets[0]
    return round(float(packet.dts * packet.time_base - first.dts * first.time_base) * 30)


def _open(source: Source, clock: MediaClock) -> tuple[PassthroughPipeline, Collector]:
    collector = Collector()
    pipeline = PassthroughPipeline(PASS, collector, clock)
    for desc in source.streams:
        pipeline.add_stream(desc)
    return pipeline, collector


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_three_layers_pass_as_three_room_layers_announced_once_with_their_sizes(clips: Path, flavour: str) -> None:
    source = _simulcast(clips, flavour)
    clock = MediaClock()
    pipeline, collector = _open(source, clock)
    clock.push(pipeline, source.packets)
    codec = source.streams[0].codec
    ready = collector.layers  # exactly one announcement
    assert (ready.codec, ready.source_width, ready.source_height) == (codec, 640, 360)
    assert ready.layers == tuple(PlannedLayer(quality, *SIZES[quality], 0) for quality in (LOW, MEDIUM, HIGH))
    # LOW's keyframe, the last of the first instant, completes the set and goes out; HIGH's and MEDIUM's came
    # before the announcement and were dropped, so they start at their next keyframe.
    starts = {LOW: 0, MEDIUM: 10, HIGH: 10}
    for quality, start in starts.items():
        frames = collector.frames[quality]
        assert [_index(frame) for frame in frames] == list(range(start, 60))
        assert {(frame.quality, frame.width, frame.height) for frame in frames} == {(quality, *SIZES[quality])}
        decoded = decode_video(codec, frames)
        assert len(decoded) == len(frames) and {(d.width, d.height) for d in decoded} == {SIZES[quality]}
        inputs = [p for p in source.packets if p.layer == quality and _packet_index(p, source) >= start]
        assert [frame.keyframe for frame in frames] == [packet.keyframe for packet in inputs]
        if codec == "vp8":
            assert [frame.data for frame in frames] == [packet.data for packet in inputs]
        else:  # each layer's IDRs carry that layer's own SPS
            assert {h264_sps_size(sps_of(frame)) for frame in frames if frame.keyframe} == {SIZES[quality]}
    stats = pipeline.stats
    assert stats.get("packets_before_announce.HIGH") == stats.get("packets_before_announce.MEDIUM") == 1
    assert stats.get("packets_before_keyframe.HIGH") == stats.get("packets_before_keyframe.MEDIUM") == 9
    assert (stats.get("frames_out.LOW"), stats.get("frames_out.MEDIUM"), stats.get("frames_out.HIGH")) == (60, 50, 50)
    assert stats.get("packets_in.video") == 180 and stats.get("timeline.reordered") == 0
    assert pipeline.latency.tracks() == ["HIGH", "LOW", "MEDIUM"]
    video = collector.of(InputStateChanged)[-1].video
    assert video is not None and (video.width, video.height) == (640, 360)  # the best layer
    assert not collector.of(UpstreamKeyframeNeeded)


@pytest.mark.parametrize("flavour", ["h264-annexb", "vp8"])
def test_a_late_layer_is_announced_after_the_wait_with_a_halved_size_and_joins_at_its_keyframe(
    clips: Path, flavour: str
) -> None:
    full = _simulcast(clips, flavour)
    late = [p for p in full.packets if p.layer != LOW or _packet_index(p, full) >= 45]  # LOW's first 1.5 s lost
    source = Source(full.streams, late)
    clock = MediaClock()
    pipeline, collector = _open(source, clock)
    clock.push(pipeline, source.packets)
    # 1 s after HIGH's first keyframe (picture 30) without LOW, the track is announced with what is known; LOW,
    # never seen by then, is announced at MEDIUM's size halved.
    assert collector.layers.layers == tuple(
        PlannedLayer(quality, *SIZES[quality], 0) for quality in (LOW, MEDIUM, HIGH)
    )
    assert [_index(frame) for frame in collector.frames[HIGH]] == list(range(30, 60))
    assert [_index(frame) for frame in collector.frames[MEDIUM]] == list(range(30, 60))
    assert [_index(frame) for frame in collector.frames[LOW]] == list(range(50, 60))  # from its first keyframe
    assert (collector.frames[LOW][0].width, collector.frames[LOW][0].height) == SIZES[LOW]
    stats = pipeline.stats
    assert stats.get("packets_before_announce.HIGH") == stats.get("packets_before_announce.MEDIUM") == 30
    assert stats.get("packets_before_keyframe.LOW") == 5


@pytest.mark.parametrize("flavour", ["h264-avcc", "vp8"])
def test_a_paused_layer_stops_and_on_resume_asks_upstream_for_a_keyframe_and_waits_for_it(
    clips: Path, flavour: str
) -> None:
    source = _simulcast(clips, flavour)
    clock = MediaClock()
    pipeline, collector = _open(source, clock)
    packets = source.packets

    def until(index: int) -> list[EncodedPacket]:
        return [packet for packet in packets if _packet_index(packet, source) < index]

    clock.push(pipeline, until(15))
    pipeline.set_layer_active(MEDIUM, False)  # dynacast: nobody watches MEDIUM
    clock.push(pipeline, until(35)[len(until(15)) :])
    assert not collector.of(UpstreamKeyframeNeeded)
    pipeline.set_layer_active(MEDIUM, True)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(MEDIUM)]  # at once, not at a packet
    pipeline.set_layer_active(MEDIUM, True)  # the session repeats every layer's state: no second request
    pipeline.set_layer_active(HIGH, True)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(MEDIUM)]
    clock.push(pipeline, packets[len(until(35)) :])
    medium = collector.frames[MEDIUM]
    assert [_index(frame) for frame in medium] == [*range(10, 15), *range(40, 60)]  # resumed at the keyframe at 40
    assert len(decode_video(source.streams[0].codec, medium)) == len(medium)
    assert [_index(frame) for frame in collector.frames[HIGH]] == list(range(10, 60))  # the others untouched
    assert [_index(frame) for frame in collector.frames[LOW]] == list(range(60))
    stats = pipeline.stats
    assert stats.get("frames_paused.MEDIUM") == 20 and stats.get("keyframes_requested.MEDIUM") == 1
    assert stats.get("packets_before_keyframe.MEDIUM") == 9 + 5  # before the first keyframe, then 35…39


@pytest.mark.parametrize("flavour", ["h264-annexb", "vp8"])
def test_a_new_publisher_describing_its_layers_again_starts_each_at_its_keyframe_and_asks_for_one(
    clips: Path, flavour: str
) -> None:
    source = _simulcast(clips, flavour)
    clock = MediaClock()
    pipeline, collector = _open(source, clock)
    before = [packet for packet in source.packets if _packet_index(packet, source) < 15]
    clock.push(pipeline, before)
    for desc in source.streams:  # a reconnect (or a newer publisher) takes over: its layers are described again
        pipeline.add_stream(desc)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(d.layer) for d in source.streams]
    clock.push(pipeline, source.packets[len(before) :])  # its frames 15…19 come before its first keyframe
    for quality in (HIGH, MEDIUM, LOW):
        indices = [_index(frame) for frame in collector.frames[quality]]
        assert not set(range(15, 20)) & set(indices) and indices[-1] == 59, quality


def test_request_keyframe_asks_upstream_for_that_layer_or_the_nearest_the_source_has(clips: Path) -> None:
    three = _simulcast(clips, "vp8")
    pipeline, collector = _open(three, MediaClock())
    for quality in (LOW, MEDIUM, HIGH):
        pipeline.request_keyframe(quality)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(q) for q in (LOW, MEDIUM, HIGH)]
    assert pipeline.stats.get("keyframes_requested.LOW") == 1

    two = Source([desc for desc in three.streams if desc.layer != MEDIUM], [])
    pipeline, collector = _open(two, MediaClock())
    pipeline.request_keyframe(MEDIUM)  # not there: the nearest, the better one on a tie
    pipeline.request_keyframe(LOW)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(HIGH), UpstreamKeyframeNeeded(LOW)]

    single = Source([replace(desc, layer=None) for desc in three.streams if desc.layer == HIGH], [])
    pipeline, collector = _open(single, MediaClock())
    pipeline.request_keyframe(LOW)  # whatever the room asks, a single-layer source has one layer to ask for
    pipeline.request_keyframe(HIGH)
    assert collector.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(None)] * 2


def test_layers_timed_a_little_apart_are_not_mistaken_for_b_frames(clips: Path) -> None:
    source = _simulcast(clips, "h264-annexb")
    early = in_time_base(0.005, source.packets[0].time_base)  # LOW's clock 5 ms behind, its packets still after HIGH's
    packets = [replace(p, pts=p.pts - early, dts=p.dts - early) if p.layer == LOW else p for p in source.packets]
    clock = MediaClock()
    pipeline, collector = _open(source, clock)
    clock.push(pipeline, packets)
    assert collector.failure is None
    assert [_index(frame) for frame in collector.frames[LOW]] == list(range(60))
    assert [_index(frame) for frame in collector.frames[HIGH]] == list(range(10, 60))
