"""The transcoding core of one session: packets in, one Opus track and a simulcast ladder out.

Shape by default: everything on the thread that calls push(), the layers encoded in turn, HIGH first (the
biggest picture waits least):

    push() thread:  video: timeline → decoder (SLICE, 1 thread) → orient → frame-rate cap
                           → for each active layer: scale + encode (codec thread_count=1)
                    audio: timeline → decoder → Opus

This holds for any ladder up to ``SEQUENTIAL_PIXEL_RATE_LIMIT`` (90 Mpixel/s over the planned layers), so for
H.264 and VP8 ladders up to 1080p30: LiveKit's 1080p30 3-layer ladder is 82 Mpixel/s, its 720p30 one 36.  A
larger ladder would not fit one core, so each of its layers gets a thread behind a ``LayerQueue`` (bounded in
time when live):

    push() thread:  timeline → decoder → orient → frame-rate cap ─┬─► LayerQueue ─► layer thread: scale + encode
                                                                  ├─► LayerQueue ─► layer thread: scale + encode
                                                                  └─► LayerQueue ─► layer thread: scale + encode

``PipelineConfig.parallel_layers`` forces one shape or the other; None (the default) lets ``layers_in_parallel``
decide once the first picture has planned the layers.

Why in turn (docs/performance.md, 1080p30 ladder + Opus, 20 s of media, 2 vCPUs): it keeps a session on one core
for less CPU live, 0.69 CPU-s per media second against 0.74 with a thread per layer, at HIGH p95 27 ms against
23 ms (goal 50 ms).  Offline, H.264 cost 13.1 against 13.0 CPU-s in one run and 12.8 against 14.5 in another;
VP8 12.1-12.9 against 13.5-13.6, live p95 32 ms.  A thread per layer buys wall time, not CPU: it finishes the
same 20 s in 7.7 s instead of 13.0, the headroom a larger ladder needs.

Layers are planned from the first decoded picture and then fixed for the session (like LiveKit, which builds its
outputs once per kind): a later resolution switch is scaled into the same layer sizes, so published tracks and
subscribers never see a renegotiation.  The transcoder takes one input stream per kind; a second ``add_stream``
of a kind replaces the first.

Callbacks run on the push() thread (audio, and video when the layers go in turn) and on the layer threads (video,
a thread per layer); whoever owns a ``Transcoder`` must make them thread-safe.  An encoder fault raises
``PipelineError`` from push() in the first shape and reports ``PipelineFailed`` from its layer thread in the
second.  This class does not isolate anything: ``pipeline.py`` runs it in a worker process.
"""

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import av
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from livekit.protocol.models import AudioCodec, VideoCodec

from pyingress.media.audio_encode import AUDIO_TIME_BASE, OpusEncoder
from pyingress.media.config import PipelineConfig, PipelineError
from pyingress.media.decode import FrameOrienter, StreamDecoder
from pyingress.media.events import (
    AudioTrackReady,
    InputStateChanged,
    PipelineEvent,
    PipelineFailed,
    PipelineStats,
    StatsUpdated,
    VideoLayersReady,
)
from pyingress.media.flow import FrameRateCap, LayerQueue
from pyingress.media.idle import GopHold, HeldPacket
from pyingress.media.input_state import InputStateTracker
from pyingress.media.layer_plan import LayerPlan, PlannedLayer, plan_layers
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.timeline import SessionTimeline, TrackTimeline
from pyingress.media.video_encode import VIDEO_TIME_BASE, LayerEncoder

log = logging.getLogger(__name__)

FrameCallback = Callable[[OutputFrame, int], None]  # the frame, and arrival (monotonic ns) of its source packet
EventCallback = Callable[[PipelineEvent], None]

# A forced IDR costs several P-frames of bits; a storm of PLIs (many subscribers, one lossy) must not turn the
# layer into an all-IDR stream.  A token bucket: one forced IDR per interval sustained, with a burst of two so
# that a request right after another (the publisher's own, then a new viewer's) is not held back — measured,
# a plain 500 ms gap added 400-500 ms to a new viewer's first frame.  Requests that must wait are not lost.
MIN_FORCED_KEYFRAME_INTERVAL_NS = 500_000_000
FORCED_KEYFRAME_BURST = 2
_ARRIVAL_MEMORY = 512  # decoded-frame → packet-arrival map entries kept per stream

# Encoding every layer on the decode thread keeps a session on one core and costs less CPU than a thread per layer
# (docs/performance.md, 1080p30 ladders, CPU-s per 20 s offline: H.264 12.8 vs 14.5; VP8 12.1-12.9 vs 13.5-13.6),
# but one core must keep up: a 1080p30 3-layer ladder (≈82 Mpixel/s) takes ≈0.65 of a core here in either codec,
# with live p95 latency 27 ms (H.264) and 32 ms (VP8).  Anything larger is spread over threads.
SEQUENTIAL_PIXEL_RATE_LIMIT = 90_000_000  # pixels per second over all layers


def output_video_codec(codec: int) -> str:
    if codec in (VideoCodec.DEFAULT_VC, VideoCodec.H264_BASELINE):
        return "h264"
    if codec == VideoCodec.VP8:
        return "vp8"
    raise PipelineError("unsupported mime type for encoder")  # LiveKit's ErrUnsupportedEncodeFormat


def check_audio_codec(codec: int) -> None:
    if codec not in (AudioCodec.DEFAULT_AC, AudioCodec.OPUS):
        raise PipelineError("unsupported mime type for encoder")


@dataclass(frozen=True)
class _Work:
    frame: VideoFrame
    pts: int  # 90 kHz
    arrival_ns: int
    colorspace: int


def _cascade(work: _Work, previous: VideoFrame | None, target: PlannedLayer) -> _Work:
    """Scale a layer from the bigger layer's picture when that is at least twice its size each way: the same
    picture (a 2:1 bilinear step averages like the direct one) from a quarter of the pixels — 320×180 from 640×360
    costs a third of what it costs from 1280×720."""
    if previous is None or previous.width < 2 * target.width or previous.height < 2 * target.height:
        return work
    return replace(work, frame=previous)


def layers_in_parallel(layers: Sequence[PlannedLayer], frame_rate: float) -> bool:
    """Whether a session's layers get a thread each (True) or are encoded in turn on the decode thread."""
    return sum(layer.width * layer.height for layer in layers) * frame_rate > SEQUENTIAL_PIXEL_RATE_LIMIT


class _Layer:
    """One simulcast layer: a scaler+encoder, the publisher's requests, and (parallel mode) a queue and a thread."""

    def __init__(
        self, owner: "Transcoder", codec: str, planned: PlannedLayer, frame_rate: float, gop: int, threaded: bool
    ) -> None:
        self.owner = owner
        self.planned = planned
        self.codec = codec
        self.encoder = LayerEncoder(codec, planned, frame_rate, gop)
        self.queue: LayerQueue[_Work] = LayerQueue(owner.config.max_queue_delay)
        self.active = True
        self.frames_out = 0
        self.keyframes_forced = 0
        self._keyframe_wanted = False
        self._resume = False
        self._keyframe_tokens = float(FORCED_KEYFRAME_BURST)
        self._tokens_at_ns: int | None = None
        self._abort = False
        self.thread: threading.Thread | None = None
        if threaded:
            self.thread = threading.Thread(target=self._run, name=f"layer-{planned.quality_name}", daemon=True)
            self.thread.start()

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True

    def set_active(self, active: bool) -> None:
        if active and not self.active:
            self._resume = True  # subscribers coming back need an IDR at once, not in a GOP
        self.active = active

    def offer(self, work: _Work, now: int) -> VideoFrame | None:
        """Encode ``work`` now (in turn), or queue it for this layer's thread; the picture encoded, when in turn."""
        if self.thread is not None:
            self.queue.put(work, now)
            return None
        try:
            return self._encode(work)
        except Exception as error:
            raise PipelineError(self._failure(error)) from error

    def finish(self) -> None:
        """End of stream: encode what is queued, flush the encoder."""
        if self.thread is not None:
            self.queue.close()
            self.thread.join()
            return
        try:
            self._emit(self.encoder.flush(), self.owner.clock())
        finally:
            self.encoder.close()

    def abort(self) -> None:
        self._abort = True
        self.queue.close()
        if self.thread is not None:
            self.thread.join(timeout=2)

    def _failure(self, error: Exception) -> str:
        return f"{self.codec} encoder ({self.planned.quality_name}) failed: {error}"

    def _take_keyframe(self, now: int) -> bool:
        if self._tokens_at_ns is not None:
            refill = (now - self._tokens_at_ns) / MIN_FORCED_KEYFRAME_INTERVAL_NS
            self._keyframe_tokens = min(float(FORCED_KEYFRAME_BURST), self._keyframe_tokens + refill)
        self._tokens_at_ns = now
        if self._resume:
            self._resume = False
            self._keyframe_wanted = False
        elif not self._keyframe_wanted or self._keyframe_tokens < 1:
            return False
        else:
            self._keyframe_tokens -= 1
        self._keyframe_wanted = False
        self.keyframes_forced += 1
        return True

    def _encode(self, work: _Work) -> VideoFrame | None:
        if not self.active:
            return None
        scaled = self.encoder.scale(work.frame, work.colorspace)
        keyframe = self._take_keyframe(self.owner.clock())
        self._emit(self.encoder.encode(scaled, work.pts, keyframe), work.arrival_ns)
        return scaled

    def _run(self) -> None:
        clock = self.owner.clock
        try:
            while True:
                work = self.queue.get(clock)
                if work is None or self._abort:
                    break
                self._encode(work)
            if not self._abort:
                self._emit(self.encoder.flush(), clock())
        except Exception as error:  # any fault here ends the session, never the process
            log.exception("layer %s failed", self.planned.quality_name)
            self.owner.fail(self._failure(error))
        finally:
            self.encoder.close()

    def _emit(self, packets: list[av.Packet], arrival_ns: int) -> None:
        for packet in packets:
            self.frames_out += 1
            self.owner.on_frame(
                OutputFrame(
                    kind="video",
                    codec=self.codec,
                    data=bytes(packet),
                    pts=packet.pts if packet.pts is not None else 0,
                    time_base=VIDEO_TIME_BASE,
                    keyframe=packet.is_keyframe,
                    quality=self.planned.quality,
                    width=self.planned.width,
                    height=self.planned.height,
                    duration=packet.duration or 0,
                ),
                arrival_ns,
            )


class _Input:
    def __init__(self, desc: StreamDescription, decoder: StreamDecoder, track: TrackTimeline) -> None:
        self.desc = desc
        self.decoder = decoder
        self.track = track
        self.seen_keyframe = desc.kind == "audio"
        self.pending_config: bytes | None = None  # announced by add_stream, applied with the next packet
        self.arrivals: collections.OrderedDict[int, int] = collections.OrderedDict()

    def remember(self, pts: int, arrival_ns: int) -> None:
        self.arrivals[pts] = arrival_ns
        while len(self.arrivals) > _ARRIVAL_MEMORY:
            self.arrivals.popitem(last=False)


class Transcoder:
    def __init__(
        self,
        config: PipelineConfig,
        on_frame: FrameCallback,
        on_event: EventCallback,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config
        self.on_frame = on_frame
        self.on_event = on_event
        self.clock = clock
        self.video_codec = output_video_codec(config.video.codec) if config.video is not None else None
        if config.audio is not None:
            check_audio_codec(config.audio.codec)
        self.timeline = SessionTimeline()
        self.input_state = InputStateTracker()
        self.counters: collections.Counter[str] = collections.Counter()
        self.plan: LayerPlan | None = None
        self.failed: str | None = None
        self._fail_lock = threading.Lock()
        self._inputs: dict[str, _Input] = {}
        self._layers: dict[int, _Layer] = {}
        self._orienter = FrameOrienter()
        self._rate_cap = FrameRateCap(config.video.frame_rate if config.video is not None else 0)
        self._opus: OpusEncoder | None = None
        self._wanted_keyframes: set[int] = set()
        self._inactive: set[int] = set()
        self._hold = GopHold()  # video packets nobody watches, undecoded (idle.py)

    # -- the session's side -------------------------------------------------------------------------------------

    def add_stream(self, desc: StreamDescription) -> None:
        wanted = self.config.video if desc.kind == "video" else self.config.audio
        if wanted is None:
            self.counters[f"streams_ignored.{desc.kind}"] += 1
            return
        previous = self._inputs.get(desc.kind)
        if previous is not None:
            if previous.desc.codec == desc.codec:
                previous.desc = desc  # same codec, maybe a new config: the decoder takes it with the next packet
                previous.pending_config = desc.codec_config
                return
            self._deliver(desc.kind, previous.decoder.flush())
            previous.decoder.close()
        track = self.timeline.track(desc.kind, 1 / 30 if desc.kind == "video" else 0.02)
        self._inputs[desc.kind] = _Input(desc, StreamDecoder(desc, self.config.decoder_error_limit), track)
        self.input_state.on_stream(desc)
        self.on_event(InputStateChanged(*self.input_state.snapshot()))

    def push(self, packet: EncodedPacket, arrival_ns: int) -> None:
        """Decode one packet and hand its pictures to the layers; raises PipelineError on a broken stream."""
        source = self._inputs.get(packet.kind)
        if source is None or self.failed is not None:
            self.counters[f"packets_ignored.{packet.kind}"] += 1
            return
        self.counters[f"packets_in.{packet.kind}"] += 1
        point = source.track.normalise(packet.pts, packet.dts, packet.time_base)
        self.input_state.on_packet(packet.kind, len(packet.data), point.dts)
        if not source.seen_keyframe:
            if not packet.keyframe:
                self.counters["packets_before_keyframe"] += 1
                return  # nothing decodes cleanly before the first keyframe
            source.seen_keyframe = True
        source.remember(point.pts, arrival_ns)
        config = packet.codec_config if packet.codec_config is not None else source.pending_config
        source.pending_config = None
        if packet.kind == "video" and config is not None:
            self._orienter.reset()  # a new sequence: its own orientation SEI (or none) applies
        if packet.kind == "video" and self._video_unwatched():
            held = HeldPacket(packet.data, point.pts, point.dts, config, arrival_ns)
            due = self._hold.offer(held, packet.keyframe)
            if due is None:
                return
            if len(due) > 1:  # the GOP outgrew the hold: catch up from its keyframe, decode on until the next
                self._restart_decoder(source)
            for item in due:
                source.decoder.decode(item.data, item.pts_us, item.dts_us, item.config)  # pictures for nobody
            self.counters["decode_errors.video"] = source.decoder.errors
            return
        frames = source.decoder.decode(packet.data, point.pts, point.dts, config)
        self.counters[f"decode_errors.{packet.kind}"] = source.decoder.errors
        self._deliver(packet.kind, frames)

    def request_keyframe(self, quality: int) -> None:
        layer = self._layers.get(quality)
        if layer is not None:
            layer.request_keyframe()
        else:
            self._wanted_keyframes.add(quality)

    def set_layer_active(self, quality: int, active: bool) -> None:
        if active:
            self._inactive.discard(quality)
        else:
            self._inactive.add(quality)
        layer = self._layers.get(quality)
        if layer is not None:
            layer.set_active(active)
        if active and self._hold.holding:
            self._decode_held()

    def end(self) -> None:
        """Flush decoders and encoders; every frame is delivered when this returns."""
        for kind, source in self._inputs.items():
            self._deliver(kind, source.decoder.flush())
            source.decoder.close()
        for layer in self._layers.values():
            layer.finish()
        if self._opus is not None:
            for encoded in self._opus.flush():
                self._emit_audio(encoded.data, encoded.pts, self.clock())
            self._opus.close()

    def abort(self) -> None:
        for layer in self._layers.values():
            layer.abort()

    def fail(self, message: str) -> None:
        with self._fail_lock:
            if self.failed is not None:
                return
            self.failed = message
        self.on_event(PipelineFailed(message))

    def stats(self) -> StatsUpdated:
        counters = dict(self.counters)
        for name, value in vars(self.timeline.counters()).items():
            counters[f"timeline.{name}"] = value
        for layer in self._layers.values():
            name = layer.planned.quality_name
            counters[f"frames_out.{name}"] = layer.frames_out
            counters[f"late_frames_dropped.{name}"] = layer.queue.dropped
            counters[f"keyframes_forced.{name}"] = layer.keyframes_forced
        counters["frames_rate_capped"] = self._rate_cap.dropped
        counters["video_packets_held"] = self._hold.held_total
        counters["video_hold_overflows"] = self._hold.overflows
        if self._opus is not None:
            counters["audio_resyncs"] = self._opus.resyncs
            counters["audio_overlaps_dropped"] = self._opus.dropped_overlap
        video, audio = self.input_state.snapshot()
        return StatsUpdated(PipelineStats(counters), video, audio)

    # -- inside -----------------------------------------------------------------------------------------------

    def _video_unwatched(self) -> bool:
        """Every planned layer is paused (dynacast): decoding would only feed nobody."""
        return bool(self._layers) and not any(layer.active for layer in self._layers.values())

    def _restart_decoder(self, source: _Input) -> None:
        source.decoder.close()
        source.decoder = StreamDecoder(source.desc, self.config.decoder_error_limit)

    def _decode_held(self) -> None:
        """A layer is watched again: decode the held GOP with a fresh decoder and pass on only its newest picture."""
        source = self._inputs.get("video")
        held = self._hold.release()
        if source is None or not held:
            return
        self._restart_decoder(source)
        newest: list[VideoFrame | AudioFrame] = []
        for item in held:
            newest = source.decoder.decode(item.data, item.pts_us, item.dts_us, item.config)[-1:] or newest
        self.counters["decode_errors.video"] = source.decoder.errors
        self.counters["idle_resumes"] += 1
        self._deliver("video", newest)

    def _deliver(self, kind: str, frames: list[VideoFrame | AudioFrame]) -> None:
        source = self._inputs[kind]
        for frame in frames:
            pts = frame.pts if frame.pts is not None else 0
            arrival = source.arrivals.pop(pts, None)
            if arrival is None:
                arrival = self.clock()
            if isinstance(frame, VideoFrame):
                self._on_video_frame(frame, pts, arrival)
            elif isinstance(frame, AudioFrame):
                self._on_audio_frame(frame, pts, arrival)

    def _on_video_frame(self, frame: VideoFrame, pts: int, arrival_ns: int) -> None:
        if pts < 0:
            self.counters["frames_before_origin.video"] += 1  # started before the session's first packet
            return
        if not self._rate_cap.admit(pts):
            return
        frame = self._orienter.orient(frame)
        if self.plan is None:
            self._start_layers(frame.width, frame.height)
        if self.input_state.on_video_frame(frame.width, frame.height):
            self.on_event(InputStateChanged(*self.input_state.snapshot()))
        work = _Work(frame, pts * 9 // 100, arrival_ns, frame.colorspace)
        now = self.clock()
        previous: VideoFrame | None = None  # the last layer's picture, when the layers go in turn
        for layer in self._layers.values():  # HIGH first: inline, the biggest picture should wait least
            if layer.active:
                previous = layer.offer(_cascade(work, previous, layer.planned), now)

    def _start_layers(self, width: int, height: int) -> None:
        video = self.config.video
        assert video is not None and self.video_codec is not None
        self.plan = plan_layers(video.layers, width, height, fit=self.config.layer_fit)
        gop = max(1, round(self.config.gop_seconds * video.frame_rate))
        parallel = self.config.parallel_layers
        if parallel is None:
            parallel = layers_in_parallel(self.plan.layers, video.frame_rate)
        # Said before the encoders open (≈9 ms for a 720p ladder): the session's room join waits for this.
        self.on_event(VideoLayersReady(self.video_codec, video.frame_rate, width, height, self.plan.layers))
        for planned in reversed(self.plan.layers):
            layer = _Layer(self, self.video_codec, planned, video.frame_rate, gop, parallel)
            if planned.quality in self._inactive:
                layer.active = False
            if planned.quality in self._wanted_keyframes:
                layer.request_keyframe()
            self._layers[planned.quality] = layer

    def _on_audio_frame(self, frame: AudioFrame, pts: int, arrival_ns: int) -> None:
        if pts < 0:
            self.counters["frames_before_origin.audio"] += 1
            return
        if self._opus is None:
            audio = self.config.audio
            assert audio is not None
            self._opus = OpusEncoder(audio)
            self.on_event(AudioTrackReady("opus", audio.channels, audio.bitrate, audio.disable_dtx))
        if self.input_state.on_audio_frame(frame.sample_rate, frame.layout.nb_channels):
            self.on_event(InputStateChanged(*self.input_state.snapshot()))
        for encoded in self._opus.encode(frame, pts):
            self._emit_audio(encoded.data, encoded.pts, arrival_ns)

    def _emit_audio(self, data: bytes, pts: int, arrival_ns: int) -> None:
        self.counters["frames_out.audio"] += 1
        self.on_frame(
            OutputFrame(kind="audio", codec="opus", data=data, pts=pts, time_base=AUDIO_TIME_BASE, duration=960),
            arrival_ns,
        )
