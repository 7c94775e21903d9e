"""Pass-through (transcoding disabled, WHIP's default): encoded frames flow on unchanged, on the session clock.

What is kept: the bytes of every frame (H.264 is only re-framed from AVCC to Annex-B when it arrives that way, with
SPS/PPS put in front of each IDR as the publisher side needs), the keyframe flags, the codec.  What is done: the
session timeline (rebased, monotonic, jumps absorbed), 90 kHz / 48 kHz timestamps, the input state from the
bitstream (SPS / VP8 keyframe header).  What cannot be done: a new IDR, and B-frames (WebRTC has no reordering,
so a source with B-frames ends the session asking for transcoding).

Simulcast (reference ingress.md §1.5 (b)): each video layer the publisher describes (``StreamDescription.layer``)
is forwarded as that room layer by its own ``LayerForwarder``; a single-layer source (layer None) is published as
HIGH.  A room track's layers are fixed when it is published, so ``VideoLayersReady`` waits until every described
layer has shown a keyframe, or ``layer_wait_ns`` after the first one did (a missing layer is announced with a
guessed size, see ``announced_sizes``, and forwarded from its first keyframe).  Frames before the announcement
are dropped and counted (``packets_before_announce.<layer>``), like those before a first keyframe: a layer whose
first keyframe fell before it starts at its next one, which the room asks for anyway when a viewer subscribes (the
session drops frames until the track is published, so anything held here would be dropped there).  The input
state describes the best layer described.

Keyframes: only the publisher can make one.  The pipeline emits ``UpstreamKeyframeNeeded(quality)`` (the
publisher's layer, None for a single-layer source) when a subscriber's PLI arrives (``request_keyframe``) and when
dynacast resumes a layer (``set_layer_active``); the session hands it to the source's keyframe back-channel, and
the RTP front door (WHIP) sends a PLI/FIR for that layer's SSRC.

It needs no decoder and no process: the work is a few microseconds per frame, done inline in ``push``.
"""

import time
from collections.abc import Callable
from fractions import Fraction

from pyingress.media.bitstream import BitstreamError
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
from pyingress.media.passthrough_layer import LayerForwarder, announced_sizes, output_quality
from pyingress.media.sinks import PipelineSink, track_name
from pyingress.media.timeline import SessionTimeline

PASSABLE = {"video": ("h264", "vp8"), "audio": ("opus",)}
LAYER_WAIT_NS = 1_000_000_000
_VIDEO_TB = Fraction(1, 90_000)
_AUDIO_TB = Fraction(1, 48_000)


class PassthroughPipeline:
    def __init__(
        self,
        config: PipelineConfig,
        sink: PipelineSink,
        clock: Callable[[], int] = time.monotonic_ns,
        layer_wait_ns: int = LAYER_WAIT_NS,
    ) -> None:
        self.config = config
        self.sink = sink
        self.clock = clock
        self.layer_wait_ns = layer_wait_ns
        self.latency = LatencyRecorder()
        self.error: str | None = None
        self._timeline = SessionTimeline()
        self._input = InputStateTracker()
        self._audio_desc: StreamDescription | None = None
        self._layers: dict[int, LayerForwarder] = {}  # by output quality
        self._first_keyframe_ns: int | None = None
        self._video_announced = False
        self._audio_announced = False
        self._finished = False
        self._counters: dict[str, int] = {}

    def add_stream(self, desc: StreamDescription) -> None:
        if self._finished:
            return
        if desc.codec not in PASSABLE[desc.kind]:
            self._fail(f"unsupported mime type for pass-through ({desc.kind} {desc.codec}): enable transcoding")
            return
        if desc.kind == "audio":
            self._audio_desc = desc
            self._input.on_stream(desc)
        else:
            self._add_layer(desc)
        self.sink.on_event(InputStateChanged(*self._input.snapshot()))

    def _add_layer(self, desc: StreamDescription) -> None:
        quality = output_quality(desc.layer)
        layer = self._layers.get(quality)
        if layer is not None:
            layer.restart(desc)  # described again: a new publisher's stream
            if layer.active:
                self._ask_keyframe(layer)
        elif self._video_announced:
            return  # the room track's layers were fixed when it was published: this one's packets are ignored
        else:
            layer = self._layers[quality] = LayerForwarder(desc, self._timeline)
        if layer is self._best_layer:
            self._input.on_stream(desc)
            self._input.on_video_frame(*layer.size)

    @property
    def _best_layer(self) -> LayerForwarder:
        return self._layers[max(self._layers)]

    def push(self, packet: EncodedPacket) -> None:
        now = self.clock()
        self.latency.packet_in(packet.kind, packet.keyframe, now)
        if self._finished:
            return
        if packet.kind == "video":
            frame = self._video(packet, now)
        elif self._audio_desc is not None:
            self._announce_video_if_due(now)
            frame = self._audio(packet)
        else:
            return
        if frame is not None:
            self.latency.frame_out(track_name(frame), now, self.clock())
            self._count(f"frames_out.{track_name(frame)}")
            self.sink.on_frame(frame)

    def _video(self, packet: EncodedPacket, now: int) -> OutputFrame | None:
        layer = self._layers.get(output_quality(packet.layer))
        if layer is None:
            self._count("packets_ignored.video")  # a layer nobody described cannot be published
            return None
        point = layer.track.normalise(packet.pts, packet.dts, packet.time_base)
        if layer.track.counters.reordered:
            self._fail("the source has B-frames, which WebRTC cannot carry: enable transcoding for this ingress")
            return None
        self._count("packets_in.video")
        if layer is self._best_layer:
            self._input.on_packet("video", len(packet.data), point.dts)
        try:
            read = layer.read(packet)
        except BitstreamError as error:
            self._fail(f"bad {layer.desc.codec} bitstream: {error}")
            return None
        if read.resized and layer is self._best_layer and self._input.on_video_frame(*layer.size):
            self.sink.on_event(InputStateChanged(*self._input.snapshot()))
        if read.keyframe and self._first_keyframe_ns is None:
            self._first_keyframe_ns = now
        self._announce_video_if_due(now)
        if not self._video_announced:
            refused: str | None = "packets_before_announce" if layer.seen_keyframe else "packets_before_keyframe"
        else:
            refused = layer.admit(read.keyframe)
        if refused is not None:
            self._count(f"{refused}.{layer.name}")
            return None
        return OutputFrame(
            kind="video",
            codec=layer.desc.codec,
            data=read.data,
            pts=point.pts * 9 // 100,
            time_base=_VIDEO_TB,
            keyframe=read.keyframe,
            quality=layer.quality,
            width=layer.size[0],
            height=layer.size[1],
        )

    def _announce_video_if_due(self, now: int) -> None:
        """Announce once every layer has shown a keyframe, or when waiting for the rest took too long."""
        if self._video_announced or self._first_keyframe_ns is None:
            return
        everyone = all(layer.seen_keyframe for layer in self._layers.values())
        if not everyone and now - self._first_keyframe_ns < self.layer_wait_ns:
            return
        self._video_announced = True
        layers = [self._layers[quality] for quality in sorted(self._layers)]  # LOW→HIGH, as the room wants them
        sizes = announced_sizes(layers)
        planned = tuple(PlannedLayer(layer.quality, *sizes[layer.quality], 0) for layer in layers)
        best = self._best_layer
        self.sink.on_event(VideoLayersReady(best.desc.codec, best.desc.frame_rate, *sizes[best.quality], planned))

    def _audio(self, packet: EncodedPacket) -> OutputFrame:
        if not self._audio_announced:
            desc = self._audio_desc
            assert desc is not None
            self._audio_announced = True
            disable_dtx = self.config.audio.disable_dtx if self.config.audio is not None else False
            self.sink.on_event(AudioTrackReady("opus", desc.channels or 2, 0, disable_dtx))
        track = self._timeline.track("audio", 0.02)
        point = track.normalise(packet.pts, packet.dts, packet.time_base)
        self._count("packets_in.audio")
        self._input.on_packet("audio", len(packet.data), point.dts)
        return OutputFrame(
            kind="audio", codec="opus", data=packet.data, pts=point.pts * 48 // 1000, time_base=_AUDIO_TB, duration=960
        )

    def request_keyframe(self, quality: int) -> None:
        """A subscriber of ``quality`` lost the picture; a layer the source lacks asks the nearest it has."""
        if not self._layers:
            self.sink.on_event(UpstreamKeyframeNeeded(None))
            return
        # Ties go to the better layer: the room only names layers we announced, so a tie is a confused caller.
        nearest = min(self._layers.values(), key=lambda layer: (abs(layer.quality - quality), -layer.quality))
        self._ask_keyframe(nearest)

    def set_layer_active(self, quality: int, active: bool) -> None:
        """Dynacast: pause a layer nobody watches; on resume it waits for a keyframe, asked for at once.

        Only a change acts (the session repeats every layer's state on each update); a layer the source does not
        have is ignored, as pausing the nearest one could blank viewers of that one.
        """
        layer = self._layers.get(quality)
        if layer is not None and layer.set_active(active):
            self._ask_keyframe(layer)

    def _ask_keyframe(self, layer: LayerForwarder) -> None:
        self._count(f"keyframes_requested.{layer.name}")
        self.sink.on_event(UpstreamKeyframeNeeded(layer.source_layer))

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
