"""The transcoding core end to end: real clips in, encoded layers out, decoded back with PyAV like a subscriber."""

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from livekit.protocol.ingress import IngressVideoEncodingPreset as Preset
from livekit.protocol.models import VideoCodec, VideoQuality

from pyingress.media.config import PipelineConfig
from pyingress.media.events import StatsUpdated
from pyingress.media.packets import EncodedPacket
from pyingress.media.pipeline import open_pipeline
from pyingress.media.presets import LayerSpec, VideoEncoding, audio_preset, video_preset
from pyingress.media.transcoder import Transcoder
from tests.media.media_helpers import (
    Collector,
    Source,
    decode_audio,
    decode_video,
    demux,
    frame_time,
    make_clip,
    nal_types,
    push_all,
    run_pipeline,
    seconds,
    sps_of,
)

LOW, MEDIUM, HIGH = VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH
OFFLINE = {"max_queue_delay": None}  # push as fast as possible and keep every frame (like a file source)


def _config(video: VideoEncoding, **kwargs: object) -> PipelineConfig:
    return PipelineConfig(video, audio_preset(0), **{**OFFLINE, **kwargs})  # type: ignore[arg-type]


def _steps(values: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(values)]


@pytest.mark.parametrize(
    ("preset", "size", "expected"),
    [
        (Preset.H264_720P_30FPS_3_LAYERS, "640x360", {LOW: (320, 180), MEDIUM: (640, 360)}),
        (Preset.H264_720P_30FPS_3_LAYERS, "360x640", {LOW: (180, 320), MEDIUM: (360, 640)}),
        (Preset.H264_540P_25FPS_2_LAYERS, "640x480", {LOW: (360, 270), HIGH: (640, 480)}),
    ],
)
def test_layers_decode_back_at_the_planned_size_in_constrained_baseline_without_b_frames(
    clips: Path, preset: int, size: str, expected: dict[int, tuple[int, int]]
) -> None:
    # The source itself has B-frames: they are reordered by the decoder and never leave.
    clip = make_clip(
        clips / f"bframes-{size}.flv",
        size=size,
        duration=2,
        video=("-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "30", "-pix_fmt", "yuv420p"),
    )
    source = demux(clip)
    run = run_pipeline(_config(video_preset(preset)), source)
    collector = run.collector
    assert collector.failure is None
    assert {layer.quality: (layer.width, layer.height) for layer in collector.layers.layers} == expected
    rate = video_preset(preset).frame_rate
    for quality, (width, height) in expected.items():
        frames = collector.frames[quality]
        assert len(frames) == round(2 * rate)  # 30 fps source; the 25 fps preset keeps 25 of each 30
        decoded = decode_video("h264", frames)
        assert {(picture.width, picture.height) for picture in decoded} == {(width, height)}
        assert {picture.pict_type for picture in decoded} <= {PictureType.I, PictureType.P}
        sps = sps_of(frames[0])
        assert sps[1] == 66 and sps[2] & 0x40, "profile_idc 66 with constraint_set1: Constrained Baseline"
        steps = _steps([seconds(frame) for frame in frames])
        # 30 fps kept as is; 30 → 25 drops one frame in six, so steps are one or two source intervals
        assert all(0.032 <= step <= 0.068 for step in steps), steps
        for frame in frames:
            types = nal_types(frame)
            assert frame.keyframe == (5 in types)
            if frame.keyframe:  # Annex-B with SPS and PPS in front of every IDR
                assert types[:2] == [7, 8] and frame.data.startswith(b"\x00\x00\x00\x01")


def test_frame_rate_is_capped_never_raised(clips: Path) -> None:
    fast = demux(make_clip(clips / "60fps.flv", size="320x180", rate=60, duration=2))
    run = run_pipeline(_config(video_preset(Preset.H264_720P_30FPS_1_LAYER)), fast)
    frames = run.collector.frames[HIGH]
    assert len(frames) == 60  # 120 source frames at 60 fps, 30 fps out
    assert max(_steps([seconds(frame) for frame in frames])) <= 0.0345
    slow = demux(make_clip(clips / "20fps.flv", size="320x180", rate=20, duration=2))
    run = run_pipeline(_config(video_preset(Preset.H264_720P_30FPS_1_LAYER)), slow)
    assert len(run.collector.frames[HIGH]) == 40  # 20 fps stays 20 fps
    assert run.collector.last_stats["frames_rate_capped"] == 0


@pytest.mark.parametrize("codec", [VideoCodec.H264_BASELINE, VideoCodec.VP8])
def test_bitrate_is_within_20_percent_of_the_target_over_ten_seconds(clips: Path, codec: int) -> None:
    clip = make_clip(clips / "moving-10s.flv", size="640x360", duration=10.0, audio=None)
    layers = (LayerSpec(LOW, 320, 180, 300_000), LayerSpec(MEDIUM, 640, 360, 800_000))
    run = run_pipeline(
        PipelineConfig(VideoEncoding(codec, 30, layers), None, max_queue_delay=None), demux(clip), timeout=180
    )
    assert run.collector.failure is None
    for layer in run.collector.layers.layers:
        frames = run.collector.frames[layer.quality]
        duration = seconds(frames[-1]) - seconds(frames[0]) + 1 / 30
        bitrate = sum(len(frame.data) for frame in frames) * 8 / duration
        assert bitrate == pytest.approx(layer.bitrate, rel=0.2), (layer, bitrate)
        assert duration == pytest.approx(10.0, abs=0.05)
    if codec == VideoCodec.VP8:
        decoded = decode_video("vp8", run.collector.frames[MEDIUM])
        assert {(picture.width, picture.height) for picture in decoded} == {(640, 360)}


def test_audio_and_video_stay_within_40_ms_over_60_seconds(clips: Path) -> None:
    # A white flash and a 1 kHz beep start together at every whole second of the source.
    clip = make_clip(
        clips / "flash-beep-60s.flv",
        duration=60.0,
        video_source="testsrc2=size=160x90:rate=30:duration=60,"
        "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\\,1)\\,0.1)'",
        audio_source="aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=60",
    )
    run = run_pipeline(
        PipelineConfig(video_preset(Preset.H264_720P_30FPS_1_LAYER), audio_preset(1), max_queue_delay=None),
        demux(clip),
        timeout=240,
    )
    collector = run.collector
    video = decode_video("h264", collector.frames[HIGH])
    flashes = [frame_time(picture) for picture in video if picture.to_ndarray(format="gray").mean() > 200]
    flash_starts = [t for i, t in enumerate(flashes) if i == 0 or t - flashes[i - 1] > 0.5]
    audio = decode_audio(collector.frames["audio"])
    beep_starts: list[float] = []
    for frame in audio:
        samples = frame.to_ndarray().reshape(-1)
        loud = np.nonzero(np.abs(samples.astype(np.float32)) > 0.1 * (32767 if samples.dtype == np.int16 else 1))[0]
        if len(loud):
            at = frame_time(frame) + loud[0] / frame.sample_rate
            if not beep_starts or at - beep_starts[-1] > 0.5:
                beep_starts.append(at)
    assert len(flash_starts) == len(beep_starts) == 60
    offsets = [abs(a - v) for a, v in zip(beep_starts, flash_starts, strict=True)]
    assert max(offsets) <= 0.040, offsets


def _timestamp_source(clips: Path) -> Source:
    return demux(make_clip(clips / "6s-360p.flv", size="640x360", duration=6.0))


def _jump(packets: list[EncodedPacket], at: float, ms: int) -> list[EncodedPacket]:
    """Everything from ``at`` seconds on (both tracks, same media instant) moves by ``ms``."""
    out = []
    for packet in packets:
        if packet.dts * packet.time_base >= at:
            packet = replace(packet, pts=packet.pts + ms, dts=packet.dts + ms)
        out.append(packet)
    return out


@pytest.mark.parametrize("scenario", ["forward-10s", "backward-10s", "wraparound"])
def test_timestamp_jumps_and_wraparound_keep_the_output_continuous_and_in_sync(clips: Path, scenario: str) -> None:
    source = _timestamp_source(clips)
    base = 20_000  # ms: a publisher's clock that did not start at zero
    packets = [replace(p, pts=p.pts + base, dts=p.dts + base) for p in source.packets]
    if scenario == "forward-10s":
        packets = _jump(packets, 3.0 + base / 1000, 10_000)
    elif scenario == "backward-10s":
        packets = _jump(packets, 3.0 + base / 1000, -10_000)
    else:  # RTMP's 32-bit millisecond clock wraps 3 s into the stream
        start = (1 << 32) - 3000
        packets = [
            replace(p, pts=(p.pts - base + start) % (1 << 32), dts=(p.dts - base + start) % (1 << 32)) for p in packets
        ]
    reference = run_pipeline(_config(video_preset(0)), source).collector
    run = run_pipeline(_config(video_preset(0)), Source(source.streams, packets))
    collector = run.collector
    assert collector.failure is None
    for key in (LOW, MEDIUM, "audio"):
        times = [seconds(frame) for frame in collector.frames[key]]
        assert len(times) == pytest.approx(len(reference.frames[key]), abs=2)
        steps = _steps(times)
        assert min(steps) > 0 and max(steps) < 0.07, (key, max(steps))
        assert times[-1] == pytest.approx(seconds(reference.frames[key][-1]), abs=0.07)
    end_skew = seconds(collector.frames["audio"][-1]) - seconds(collector.frames[MEDIUM][-1])
    reference_skew = seconds(reference.frames["audio"][-1]) - seconds(reference.frames[MEDIUM][-1])
    assert end_skew == pytest.approx(reference_skew, abs=0.040)
    stats = collector.last_stats
    if scenario == "wraparound":
        assert stats["timeline.wraparounds"] == 2 and stats["timeline.discontinuities"] == 0
    else:
        assert stats["timeline.discontinuities"] == 2 and stats["timeline.wraparounds"] == 0


def test_a_resolution_switch_mid_stream_keeps_the_layers_and_the_output_going(clips: Path) -> None:
    first = demux(make_clip(clips / "switch-a.flv", size="640x360", duration=3.0))
    second = demux(make_clip(clips / "switch-b.flv", size="1280x720", duration=3.0))
    later = [replace(p, pts=p.pts + 3000, dts=p.dts + 3000) for p in second.packets]
    first_video = next(i for i, p in enumerate(later) if p.kind == "video")
    new_config = next(desc for desc in second.streams if desc.kind == "video").codec_config
    later[first_video] = replace(later[first_video], codec_config=new_config)  # the new AVC sequence header
    run = run_pipeline(_config(video_preset(0)), Source(first.streams, first.packets + later))
    collector = run.collector
    assert collector.failure is None
    assert [(layer.width, layer.height) for layer in collector.layers.layers] == [(320, 180), (640, 360)]
    for quality, size in ((LOW, (320, 180)), (MEDIUM, (640, 360))):
        frames = collector.frames[quality]
        assert len(frames) == 180
        assert max(_steps([seconds(frame) for frame in frames])) < 0.07
        assert {(p.width, p.height) for p in decode_video("h264", frames)} == {size}


def test_display_matrix_rotation_is_honoured(clips: Path) -> None:
    clip = make_clip(
        clips / "rotated.flv",
        size="320x180",
        duration=1.0,
        video=(
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "h264_metadata=display_orientation=insert:rotate=90",
        ),
    )
    source = demux(clip)
    run = run_pipeline(_config(video_preset(0)), source)
    layers = run.collector.layers
    assert (layers.source_width, layers.source_height) == (180, 320)
    assert [(layer.width, layer.height) for layer in layers.layers] == [(180, 320)]
    upright = decode_video("h264", run.collector.frames[LOW])[10].to_ndarray(format="gray").astype(float)
    with av.open(str(clip)) as container:
        picture = next(itertools.islice(container.decode(video=0), 10, None))
    sideways = picture.to_ndarray(format="gray").astype(float)
    right = np.abs(np.rot90(sideways, 1) - upright).mean()  # turned counter-clockwise, as the matrix says
    wrong = np.abs(np.rot90(sideways, -1) - upright).mean()
    assert right < 12 < wrong, (right, wrong)


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_keyframe_requests_and_paused_layers(clips: Path, isolation: Literal["thread", "process"]) -> None:
    source = _timestamp_source(clips)
    collector = Collector()
    pipeline = open_pipeline(_config(video_preset(0), gop_seconds=10.0), collector, isolation=isolation)
    video = source.kind("video")
    third = source.packets.index(video[60])  # 2 s in
    push_all(pipeline, Source(source.streams, source.packets[:third]))
    _wait_for(lambda: collector.count(MEDIUM) >= 59)
    pipeline.set_layer_active(LOW, False)
    pipeline.request_keyframe(MEDIUM)
    second = source.packets.index(video[120])
    push_all(pipeline, Source([], source.packets[third:second]))
    _wait_for(lambda: collector.count(MEDIUM) >= 119)
    pipeline.set_layer_active(LOW, True)
    push_all(pipeline, Source([], source.packets[second:]))
    pipeline.end()
    assert pipeline.wait(60)
    pipeline.close()
    medium = collector.frames[MEDIUM]
    low = collector.frames[LOW]
    # The first IDR, then the requested one: on the next frame encoded after the request, which is frame 59 or 60
    # depending on whether the last frame pushed had left the decoder when the request arrived.
    forced = [i for i, frame in enumerate(medium) if frame.keyframe]
    assert forced[0] == 0 and forced[1:] in ([59], [60])
    assert len(medium) == 180
    # Paused for the 2 s in the middle. Pause and resume are asynchronous to the frames already queued for the
    # layer, so the frame at either edge may or may not be encoded: 59 or 60 frames before, 60 or 61 after.
    resumed = next(i for i in range(1, len(low)) if seconds(low[i]) - seconds(low[i - 1]) > 1.0)
    assert resumed in (59, 60) and len(low) - resumed in (60, 61)
    assert [i for i, frame in enumerate(low) if frame.keyframe] == [0, resumed]  # a resumed layer starts with an IDR
    assert seconds(low[resumed]) - seconds(low[resumed - 1]) == pytest.approx(2.0, abs=0.075)
    assert collector.last_stats["keyframes_forced.MEDIUM"] == 1


def test_input_state_reports_what_came_in(clips: Path) -> None:
    clip = make_clip(clips / "6s.flv", size="320x180", duration=6.0)
    source = demux(clip)
    run = run_pipeline(_config(video_preset(0)), source)
    stats = run.collector.of(StatsUpdated)[-1]
    video, audio = stats.video, stats.audio
    assert video is not None and audio is not None
    assert (video.mime_type, video.width, video.height, video.framerate) == ("video/H264", 320, 180, 30)
    video_bytes = sum(len(p.data) for p in source.kind("video"))
    assert video.average_bitrate == pytest.approx(video_bytes * 8 / 6.0, rel=0.05)
    assert (audio.mime_type, audio.channels, audio.sample_rate) == ("audio/aac", 2, 48000)
    assert audio.average_bitrate == pytest.approx(96_000, rel=0.2)
    proto = video.to_proto()
    assert (proto.mime_type, proto.width, proto.height) == ("video/H264", 320, 180)


def test_video_only_and_audio_only_sources(clips: Path) -> None:
    video_only = demux(make_clip(clips / "video-only.flv", duration=1.0, audio=None))
    run = run_pipeline(_config(video_preset(0)), video_only)
    assert run.collector.count(LOW) == 30 and run.collector.count("audio") == 0
    sound = demux(make_clip(clips / "1s.flv", duration=1.0))
    audio_only = Source([d for d in sound.streams if d.kind == "audio"], sound.kind("audio"))
    run = run_pipeline(_config(video_preset(0)), audio_only)
    assert run.collector.count("audio") == pytest.approx(50, abs=2) and not run.collector.frames.get(LOW)


def test_sequential_layers_give_the_same_ladder(clips: Path) -> None:
    source = _timestamp_source(clips)
    parallel = run_pipeline(_config(video_preset(0)), source).collector
    sequential = run_pipeline(_config(video_preset(0), parallel_layers=False), source).collector
    assert sequential.failure is None and sequential.layers == parallel.layers
    for quality in (LOW, MEDIUM):
        ours, theirs = sequential.frames[quality], parallel.frames[quality]
        assert [frame.pts for frame in ours] == [frame.pts for frame in theirs]
        assert [frame.keyframe for frame in ours] == [frame.keyframe for frame in theirs]


def test_layers_share_the_decode_thread_up_to_a_1080p30_ladder() -> None:
    from pyingress.media.layer_plan import plan_layers
    from pyingress.media.transcoder import layers_in_parallel

    ladder_1080 = plan_layers(video_preset(1).layers, 1920, 1080).layers
    assert layers_in_parallel(ladder_1080, 30.0) is False  # one core keeps up, for less CPU (H.264 and VP8)
    assert layers_in_parallel(ladder_1080, 60.0) is True  # it would not at 60 fps
    assert layers_in_parallel(plan_layers(video_preset(0).layers, 1280, 720).layers, 30.0) is False


def test_video_nobody_watches_is_not_decoded_and_a_resume_starts_from_the_newest_picture(clips: Path) -> None:
    source = _timestamp_source(clips)  # 640x360, a keyframe every second
    collector = Collector()
    transcoder = Transcoder(_config(video_preset(0)), lambda frame, _: collector.on_frame(frame), collector.on_event)
    for desc in source.streams:
        transcoder.add_stream(desc)
    video = source.kind("video")
    first, middle = source.packets.index(video[30]), source.packets.index(video[100])
    for packet in source.packets[:first]:
        transcoder.push(packet, 0)
    assert collector.count(MEDIUM) == 30
    for quality in (LOW, MEDIUM):
        transcoder.set_layer_active(quality, False)
    for packet in source.packets[first:middle]:
        transcoder.push(packet, 0)
    # Frame 30 opened a GOP: every packet since was held, undecoded, and only the GOP of frame 90 is kept.
    assert transcoder.stats().stats.counters["video_packets_held"] == 70
    assert collector.count(MEDIUM) == 30 and collector.count(LOW) == 30  # nothing encoded while paused
    transcoder.set_layer_active(MEDIUM, True)
    resumed = collector.frames[MEDIUM][30]
    last_before = collector.frames[MEDIUM][29]
    assert resumed.keyframe and seconds(resumed) - seconds(last_before) == pytest.approx(70 / 30, abs=0.002)
    assert collector.count(MEDIUM) == 31 and collector.count(LOW) == 30
    for packet in source.packets[middle:]:
        transcoder.push(packet, 0)
    transcoder.end()
    medium = collector.frames[MEDIUM]
    assert len(medium) == 31 + len(video) - 100
    # Decoded back like a subscriber would: every picture after the resume is whole and in order.
    pictures = decode_video("h264", medium[30:])
    assert len(pictures) == len(medium) - 30 and (pictures[0].width, pictures[0].height) == (640, 360)
    assert transcoder.stats().stats.counters["idle_resumes"] == 1
