"""Real inputs for media tests: clips made by Debian ffmpeg, demuxed by PyAV into EncodedPackets, and PyAV decoders
to read back what the pipeline produced (no mocks: the same libraries a viewer's decoder would use)."""

import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeVar, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from pyingress.media.bitstream import split_annexb
from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEvent, PipelineFailed, StatsUpdated, VideoLayersReady
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.pipeline import MediaPipeline, open_pipeline

FFMPEG = "/usr/bin/ffmpeg"
T = TypeVar("T")


def make_clip(
    path: Path,
    *,
    size: str = "320x180",
    rate: float = 30,
    duration: float = 2.0,
    video: Sequence[str] = ("-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p"),
    audio: Sequence[str] | None = ("-c:a", "aac", "-b:a", "96k"),
    sample_rate: int = 48000,
    channels: int = 2,
    video_source: str | None = None,
    audio_source: str | None = None,
    extra: Sequence[str] = (),
) -> Path:
    """A test pattern (+ a sine) encoded by Debian ffmpeg; cached by path."""
    if path.exists():
        return path
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", video_source or f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    if audio is not None:
        layout = "mono" if channels == 1 else "stereo"
        source = audio_source or f"sine=frequency=440:sample_rate={sample_rate}:duration={duration}"
        command += ["-f", "lavfi", "-i", f"{source},aformat=channel_layouts={layout}"]
    command += list(video)
    if audio is not None:
        command += list(audio)
    command += [*extra, "-t", str(duration), str(path)]
    subprocess.run(command, check=True, timeout=120)
    return path


@dataclass
class Source:
    streams: list[StreamDescription]
    packets: list[EncodedPacket]

    def kind(self, kind: str) -> list[EncodedPacket]:
        return [packet for packet in self.packets if packet.kind == kind]


def demux(path: Path) -> Source:
    """Every stream and packet of a file, as a front door would deliver them (FLV/MP4 H.264 stays AVCC)."""
    with av.open(str(path)) as container:
        streams: list[StreamDescription] = []
        codecs: dict[int, str] = {}
        for stream in container.streams:
            if stream.type not in ("audio", "video"):
                continue
            context = stream.codec_context
            codec = context.codec.canonical_name
            codecs[stream.index] = codec
            if isinstance(context, VideoCodecContext):
                rate = float(stream.average_rate) if stream.average_rate else 0.0
                streams.append(
                    StreamDescription("video", codec, context.extradata, context.width, context.height, rate)
                )
            elif isinstance(context, AudioCodecContext):
                streams.append(
                    StreamDescription(
                        "audio",
                        codec,
                        context.extradata,
                        sample_rate=context.sample_rate,
                        channels=context.layout.nb_channels,
                    )
                )
        packets = []
        for packet in container.demux():
            if packet.size == 0 or packet.stream.index not in codecs or packet.pts is None:
                continue
            kind = packet.stream.type
            assert kind in ("audio", "video")
            packets.append(
                EncodedPacket(
                    kind,
                    codecs[packet.stream.index],
                    bytes(packet),
                    packet.pts,
                    packet.dts if packet.dts is not None else packet.pts,
                    packet.time_base,
                    packet.is_keyframe,
                )
            )
    return Source(streams, packets)


class Collector:
    """A thread-safe sink keeping every frame (by track: "audio" or a VideoQuality) and event."""

    def __init__(self) -> None:
        self.frames: dict[str | int, list[OutputFrame]] = defaultdict(list)
        self.arrivals: dict[str | int, list[float]] = defaultdict(list)  # monotonic time each frame came out
        self.events: list[PipelineEvent] = []
        self.event_times: list[float] = []
        self._lock = threading.Lock()

    def on_frame(self, frame: OutputFrame) -> None:
        with self._lock:
            key = "audio" if frame.quality is None else frame.quality
            self.frames[key].append(frame)
            self.arrivals[key].append(time.monotonic())

    def on_event(self, event: PipelineEvent) -> None:
        with self._lock:
            self.events.append(event)
            self.event_times.append(time.monotonic())

    def time_of(self, kind: type) -> float:
        with self._lock:
            return next(at for event, at in zip(self.events, self.event_times, strict=True) if isinstance(event, kind))

    def count(self, key: str | int) -> int:
        with self._lock:
            return len(self.frames.get(key, []))

    def of(self, kind: type[T]) -> list[T]:
        with self._lock:
            return [event for event in self.events if isinstance(event, kind)]

    @property
    def layers(self) -> VideoLayersReady:
        (ready,) = self.of(VideoLayersReady)
        return ready

    @property
    def failure(self) -> str | None:
        failed = self.of(PipelineFailed)
        return failed[0].message if failed else None

    @property
    def last_stats(self) -> dict[str, int]:
        stats = self.of(StatsUpdated)
        return stats[-1].stats.counters if stats else {}


@dataclass
class Run:
    collector: Collector
    pipeline: MediaPipeline
    wall: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


def push_all(
    pipeline: MediaPipeline, source: Source, *, pace: bool = False, speed: float = 1.0, start: float | None = None
) -> None:
    """Push every packet; with ``pace`` at the media rate like a live publisher (by DTS)."""
    for desc in source.streams:
        pipeline.add_stream(desc)
    origin = None
    begin = time.monotonic() if start is None else start
    for packet in source.packets:
        if pace:
            at = float(packet.dts * packet.time_base)
            origin = at if origin is None else origin
            delay = begin + (at - origin) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pipeline.push(packet)


def run_pipeline(
    config: PipelineConfig,
    source: Source,
    *,
    isolation: Literal["process", "thread"] = "thread",
    pace: bool = False,
    timeout: float = 120.0,
) -> Run:
    collector = Collector()
    pipeline = open_pipeline(config, collector, isolation=isolation)
    started = time.monotonic()
    try:
        push_all(pipeline, source, pace=pace)
        pipeline.end()
        assert pipeline.wait(timeout), "pipeline did not finish"
    finally:
        pipeline.close()
    return Run(collector, pipeline, time.monotonic() - started)


def _decode(codec: str, frames: Iterable[OutputFrame]) -> list[VideoFrame | AudioFrame]:
    context = cast(
        VideoCodecContext | AudioCodecContext,
        CodecContext.create({"h264": "h264", "vp8": "vp8", "opus": "libopus"}[codec], "r"),
    )
    decoded: list[VideoFrame | AudioFrame] = []
    for frame in frames:
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.dts = frame.pts
        packet.time_base = frame.time_base
        decoded.extend(context.decode(packet))
    decoded.extend(context.decode(None))
    return decoded


def decode_video(codec: str, frames: Iterable[OutputFrame]) -> list[VideoFrame]:
    """Decode a video track's output with PyAV, as a subscriber would."""
    return [frame for frame in _decode(codec, frames) if isinstance(frame, VideoFrame)]


def decode_audio(frames: Iterable[OutputFrame]) -> list[AudioFrame]:
    return [frame for frame in _decode("opus", frames) if isinstance(frame, AudioFrame)]


def frame_time(frame: VideoFrame | AudioFrame) -> float:
    assert frame.pts is not None and frame.time_base is not None
    return float(frame.pts * frame.time_base)


def sps_of(frame: OutputFrame) -> bytes:
    return next(unit for unit in split_annexb(frame.data) if unit[0] & 0x1F == 7)


def nal_types(frame: OutputFrame) -> list[int]:
    return [unit[0] & 0x1F for unit in split_annexb(frame.data)]


def seconds(frame: OutputFrame) -> float:
    return float(frame.pts * frame.time_base)


def shift(packets: Iterable[EncodedPacket], ticks_by_kind: dict[str, int]) -> list[EncodedPacket]:
    return [
        replace(p, pts=p.pts + ticks_by_kind.get(p.kind, 0), dts=p.dts + ticks_by_kind.get(p.kind, 0)) for p in packets
    ]


def in_time_base(value: float, time_base: Fraction) -> int:
    return round(value / time_base)


def simulcast(layers: dict[int, Source]) -> Source:
    """Video sources of one picture as a simulcast publisher sends them: every stream and packet tagged with its layer
    (VideoQuality), packets interleaved by time, at one instant the better layer first (rid order)."""
    streams = [replace(desc, layer=quality) for quality, source in layers.items() for desc in source.streams]
    tagged = [(quality, replace(p, layer=quality)) for quality, source in layers.items() for p in source.packets]
    tagged.sort(key=lambda item: (item[1].dts * item[1].time_base, -item[0]))
    return Source(streams, [packet for _, packet in tagged])


class MediaClock:
    """An injected pipeline clock set to the media time of the packet being pushed: a publisher in real time."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns

    def push(self, pipeline: MediaPipeline, packets: Iterable[EncodedPacket]) -> None:
        for packet in packets:
            self.now_ns = int(packet.dts * packet.time_base * 1_000_000_000)
            pipeline.push(packet)
