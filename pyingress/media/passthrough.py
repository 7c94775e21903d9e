"""Pass-through (transcoding disabled, WHIP's default): encoded frames flow on unchanged, on the session clock.

What is kept: the bytes of every frame (H.264 is only re-framed from AVCC to Annex-B when it arrives that way, with
SPS/PPS put in front of each IDR as the publisher side needs), the keyframe flags, the codec.  What is done: the
session timeline (rebased, monotonic, jumps absorbed), 90 kHz / 48 kHz timestamps, the input state from the
bitstream (SPS / VP8 keyframe header).  What cannot be done: a new IDR — a subscriber's PLI becomes an
``UpstreamKeyframeNeeded`` event for the front door to forward to the publisher; and B-frames cannot pass
(WebRTC has no reordering), so a source with B-frames ends the session asking for transcoding.

It needs no decoder and no process: the work is a few microseconds per frame, done inline in ``push``.
"""

import time
from collections.abc import Callable
from fractions import Fraction

from livekit.protocol.models import VideoQuality

from pyingress.media.bitstream import (
    AnnexBWriter,
    BitstreamError,
    h264_nal_type,
    h264_sps_size,
    split_annexb,
    vp8_frame_info,
)
from pyingress.media.config import PipelineConfig
from pyingress.media.events import (
    AudioTrackReady,
    InputStateChanged,
    PipelineEnded,
    PipelineFailed,
    PipelineStats,
    UpstreamKeyframeNeeded,
    VideoLayersReady,
)
from pyingress.media.input_state import InputStateTracker
from pyingress.media.latency import LatencyRecorder
from pyingress.media.layer_plan import PlannedLayer
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.pipeline import PipelineSink
from pyingress.media.timeline import SessionTimeline

PASSABLE = {"video": ("h264", "vp8"), "audio": ("opus",)}
_VIDEO_TB = Fraction(1, 90_000)
_AUDIO_TB = Fraction(1, 48_000)


class PassthroughPipeline:
    def __init__(
        self, config: PipelineConfig, sink: PipelineSink, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.config = config
        self.sink = sink
        self.clock = clock
        self.latency = LatencyRecorder()
        self.error: str | None = None
        self._timeline = SessionTimeline()
        self._input = InputStateTracker()
        self._streams: dict[str, StreamDescription] = {}
        self._annexb: AnnexBWriter | None = None
        self._size = (0, 0)
        self._announced: set[str] = set()
        self._finished = False
        self._counters: dict[str, int] = {}

    def add_stream(self, desc: StreamDescription) -> None:
        if self._finished:
            return
        if desc.codec not in PASSABLE[desc.kind]:
            self._fail(f"unsupported mime type for pass-through ({desc.kind} {desc.codec}): enable transcoding")
            return
        self._streams[desc.kind] = desc
        self._input.on_stream(desc)
        if desc.kind == "video":
            self._size = (desc.width, desc.height)
            if desc.codec == "h264":
                self._annexb = AnnexBWriter("h264", desc.codec_config)
                self._learn_size_from_sps(self._annexb.parameter_sets)
        self.sink.on_event(InputStateChanged(*self._input.snapshot()))

    def push(self, packet: EncodedPacket) -> None:
        now = self.clock()
        self.latency.packet_in(packet.kind, packet.keyframe, now)
        desc = self._streams.get(packet.kind)
        if desc is None or self._finished:
            return
        track = self._timeline.track(packet.kind, 1 / 30 if packet.kind == "video" else 0.02)
        point = track.normalise(packet.pts, packet.dts, packet.time_base)
        if track.counters.reordered:
            self._fail("the source has B-frames, which WebRTC cannot carry: enable transcoding for this ingress")
            return
        self._input.on_packet(packet.kind, len(packet.data), point.dts)
        self._count(f"packets_in.{packet.kind}")
        try:
            frame = self._video(packet, point.pts) if packet.kind == "video" else self._audio(packet, point.pts)
        except BitstreamError as error:
            self._fail(f"bad {desc.codec} bitstream: {error}")
            return
        if frame is None:
            return
        self.latency.frame_out(frame.kind if frame.quality is None else "HIGH", now, self.clock())
        self._count(f"frames_out.{packet.kind}")
        self.sink.on_frame(frame)

    def _video(self, packet: EncodedPacket, pts: int) -> OutputFrame | None:
        data, keyframe = packet.data, packet.keyframe
        if self._annexb is not None:
            if packet.codec_config:
                self._annexb.update_config(packet.codec_config)
            data, keyframe = self._annexb.write(packet.data)
            if keyframe:
                sps = [unit for unit in split_annexb(data) if h264_nal_type(unit) == 7]
                self._learn_size_from_sps(sps)
        else:
            keyframe, width, height = vp8_frame_info(data)
            if keyframe:
                self._learn_size((width, height))
        if "video" not in self._announced:
            if not keyframe:
                self._count("packets_before_keyframe")
                return None  # a subscriber can start nowhere else
            self._announce_video()
        width, height = self._size
        return OutputFrame(
            kind="video",
            codec=self._streams["video"].codec,
            data=data,
            pts=pts * 9 // 100,
            time_base=_VIDEO_TB,
            keyframe=keyframe,
            quality=VideoQuality.HIGH,
            width=width,
            height=height,
        )

    def _audio(self, packet: EncodedPacket, pts: int) -> OutputFrame:
        if "audio" not in self._announced:
            desc = self._streams["audio"]
            self._announced.add("audio")
            disable_dtx = self.config.audio.disable_dtx if self.config.audio is not None else False
            self.sink.on_event(AudioTrackReady("opus", desc.channels or 2, 0, disable_dtx))
        return OutputFrame(
            kind="audio", codec="opus", data=packet.data, pts=pts * 48 // 1000, time_base=_AUDIO_TB, duration=960
        )

    def _learn_size_from_sps(self, units: list[bytes]) -> None:
        for unit in units:
            if h264_nal_type(unit) == 7:
                self._learn_size(h264_sps_size(unit))

    def _learn_size(self, size: tuple[int, int]) -> None:
        if size != self._size and size != (0, 0):
            self._size = size
            if self._input.on_video_frame(*size):
                self.sink.on_event(InputStateChanged(*self._input.snapshot()))

    def _announce_video(self) -> None:
        self._announced.add("video")
        width, height = self._size
        desc = self._streams["video"]
        layer = PlannedLayer(VideoQuality.HIGH, width, height, 0)
        self.sink.on_event(VideoLayersReady(desc.codec, desc.frame_rate, width, height, (layer,)))

    def request_keyframe(self, quality: int) -> None:
        self.sink.on_event(UpstreamKeyframeNeeded())

    def set_layer_active(self, quality: int, active: bool) -> None:
        """One layer, the publisher's: nothing to pause here (WHIP simulcast would need per-rid forwarding)."""

    def end(self) -> None:
        if not self._finished:
            self._finished = True
            self.sink.on_event(PipelineEnded())

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished

    def close(self) -> None:
        self._finished = True

    @property
    def stats(self) -> PipelineStats:
        counters = dict(self._counters)
        for name, value in vars(self._timeline.counters()).items():
            counters[f"timeline.{name}"] = value
        return PipelineStats(counters)

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    def _fail(self, message: str) -> None:
        if not self._finished:
            self._finished = True
            self.error = message
            self.sink.on_event(PipelineFailed(message))
