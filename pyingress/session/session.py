"""One ingress session: a media source in, the media pipeline in the middle, a room publisher out.

The session owns the state machine (``SessionState``) and decides how it ends:

- the publisher stops and no new one takes over within the grace window → INACTIVE (COMPLETE for URL ingresses),
  after the pipeline has drained what it was given;
- ``stop()`` (Update/Delete through the API, shutdown) → INACTIVE at once;
- the pipeline fails, the room connection is lost for good, nothing decodable arrives → ERROR with the message.

Beyond LiveKit: a source that ends abruptly or unpublishes is not the end if another one for the same ingress
attaches within ``grace_seconds`` — the pipeline and the room participant carry on, subscribers see a short
freeze instead of a leave and join.  A newer publisher on the same key replaces the older one the same way
(``slot.SourceSlot`` holds those rules for every door).

Keyframes flow back to the publisher: a pipeline that cannot make one itself (pass-through) reports
``UpstreamKeyframeNeeded`` for a layer, and the session hands it to the playing source's back-channel (RTP doors
send PLI/FIR; RTMP, SRT and files only count it).  A transcoded session feeds the pipeline one video layer: the
best one a simulcast publisher described.
"""

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from livekit.protocol.ingress import IngressInfo, IngressInput
from livekit.protocol.models import TrackSource

from pyingress.control.errors import SOURCE_NOT_READY, IngressError
from pyingress.control.transcoding import is_transcoded
from pyingress.ingest.source import MediaSource, SourceItem
from pyingress.logs import bind_session
from pyingress.media.config import PipelineConfig
from pyingress.media.events import (
    AudioTrackReady,
    InputStateChanged,
    PipelineEnded,
    PipelineEvent,
    PipelineFailed,
    PipelineStats,
    StatsUpdated,
    UpstreamKeyframeNeeded,
    VideoLayersReady,
)
from pyingress.media.latency import LatencyRecorder
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.pipeline import MediaPipeline, open_pipeline
from pyingress.media.presets import resolve_audio, resolve_video
from pyingress.media.sinks import CallbackSink
from pyingress.metrics import PACKET_LATENCY, SESSIONS, SESSIONS_ENDED, PipelineCounters
from pyingress.publish.join_hold import JoinHold
from pyingress.publish.livekit.signal import SignalClient
from pyingress.publish.livekit.token import ingress_join_token_for
from pyingress.publish.publication import (
    AudioTrackPlan,
    Disconnected,
    PublisherEvent,
    PublisherOptions,
    VideoTrackPlan,
)
from pyingress.publish.room_publisher import RoomPublisher, close_preconnected, preconnect
from pyingress.session.slot import SourceSlot
from pyingress.session.state import SessionState

log = logging.getLogger("pyingress.session")


@dataclass(frozen=True)
class SessionSettings:
    ws_url: str
    api_key: str
    api_secret: str
    grace_seconds: float = 5.0
    # After the first track is ready, how long to wait for the other kind before publishing without it.
    track_wait_seconds: float = 2.0
    # No publishable media this long after the session started → ERROR "source encoder not ready".
    start_timeout_seconds: float = 60.0
    drain_seconds: float = 5.0
    stats_report_seconds: float = 10.0
    publisher: PublisherOptions | None = None


PipelineFactory = Callable[[PipelineConfig, CallbackSink], MediaPipeline]


class IngressSession:
    def __init__(
        self,
        info: IngressInfo,
        state: SessionState,
        settings: SessionSettings,
        pipeline_factory: PipelineFactory = open_pipeline,
    ) -> None:
        self.info = info
        self.state = state
        self.settings = settings
        self.resource_id = state.state.resource_id
        self._pipeline_factory = pipeline_factory
        self.slot = SourceSlot(settings.grace_seconds, name=self.resource_id)
        self._transcode = is_transcoded(info)
        # The one layer of a simulcast source a transcoder is fed, chosen per source (see _transcoded_layer).
        self._layers_of: MediaSource | None = None
        self._held: dict[int | None, StreamDescription] = {}
        self._chosen: int | None = None
        self._events: asyncio.Queue[PipelineEvent] = asyncio.Queue()
        self._publisher: RoomPublisher | None = None
        self._published = False
        self._pipeline: MediaPipeline | None = None
        self._counters = PipelineCounters()  # feeds the Prometheus totals
        self._join_hold = JoinHold()  # video encoded before the publisher exists (its room join starts later)
        self._video_ready: VideoLayersReady | None = None
        self._audio_ready: AudioTrackReady | None = None
        self._kinds: set[str] = set()
        self._stopping: str | None = None
        self._done = asyncio.Event()
        self._all_ready = asyncio.Event()  # every announced kind has its track plan
        self._pipeline_ended = asyncio.Event()
        self._publisher_error: str | None = None
        self.ending = False  # teardown has begun: nothing joins any more
        # What came in since the start: "packets.video", "bytes.audio" … (the dashboard's live input rate).
        self.received: collections.Counter[str] = collections.Counter()
        self._active_layers: frozenset[int] | None = None
        self._attributes: dict[str, str] = {}  # participant attributes the media set (a URL's SCTE-35 splices)
        self._signal: asyncio.Task[SignalClient] | None = None  # the room joined early, for the publisher

    # -- called by the front door / service --

    def attach(self, source: MediaSource) -> None:
        """Give the session its (next) source; a newer one replaces the one that is playing."""
        self.slot.attach(source)

    @property
    def sources_attached(self) -> int:
        return self.slot.attached

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def running(self) -> bool:
        """Neither ended nor ending: a publisher for this ingress may still join it."""
        return not self.ending and not self.done

    async def stop(self, reason: str = "ingress stopped") -> None:
        """End the session now, cleanly (INACTIVE): used by Update/Delete and shutdown."""
        if self._stopping is None:
            self._stopping = reason
        self.slot.stop(reason)
        await self._done.wait()

    async def wait(self) -> None:
        await self._done.wait()

    # -- what it is doing, read by the dashboard (on the loop; the pipeline's figures are copies) --

    @property
    def pipeline_stats(self) -> PipelineStats:
        """The media pipeline's counters since the start (worker_cpu_ms, frames_out.HIGH …)."""
        return self._pipeline.stats if self._pipeline is not None else PipelineStats()

    @property
    def latency(self) -> LatencyRecorder | None:
        """Packet in → frame out per output track; None before the pipeline exists."""
        return self._pipeline.latency if self._pipeline is not None else None

    @property
    def video_output(self) -> VideoLayersReady | None:
        """The published video track's codec and layers, once planned."""
        return self._video_ready

    @property
    def progress(self) -> tuple[float, float | None] | None:
        """How far a file has played: (media seconds sent, its duration or None when live or unknown), as the
        playing source's door keeps it (URL pull: ``position_seconds``/``duration_seconds``); None for a door
        that says nothing of the kind (push ingresses)."""
        source = self.slot.current
        if source is None or "position_seconds" not in source.metadata:
            return None
        return source.metadata["position_seconds"], source.metadata.get("duration_seconds")

    @property
    def active_layers(self) -> frozenset[int] | None:
        """The layers someone watches (dynacast); None until the room has said."""
        return self._active_layers

    # -- the session's life --

    async def run(self) -> None:
        bind_session(self.info.ingress_id, self.resource_id)  # on every log line of this session's tasks
        loop = asyncio.get_running_loop()
        config = PipelineConfig(
            video=resolve_video(self.info.video if self.info.HasField("video") else None),
            audio=resolve_audio(self.info.audio if self.info.HasField("audio") else None),
            transcode=self._transcode,
            session_id=self.resource_id,
        )

        # The pipeline calls these from its own threads: hop onto the session's loop.
        def on_frame(frame: OutputFrame) -> None:
            loop.call_soon_threadsafe(self._on_frame, frame)

        def on_event(event: PipelineEvent) -> None:
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        sink = CallbackSink(on_frame, on_event)
        error: str | None = None
        input_name = IngressInput.Name(self.info.input_type)
        SESSIONS.labels(input_name).inc()
        # Join the room while the media worker starts: the first picture then meets a participant ready to
        # publish instead of waiting for a websocket and a join (as livekit/ingress, which joins at session start).
        token = ingress_join_token_for(self.info, self.settings.api_key, self.settings.api_secret)
        self._signal = preconnect(self.settings.ws_url, token, self.settings.publisher)
        try:
            self._pipeline = await asyncio.to_thread(self._pipeline_factory, config, sink)
            self._pipeline.latency.observe(functools.partial(_observe_latency, input_name))
            error = await self._supervise()
        except IngressError as exc:
            error = exc.message
        except Exception as exc:  # a bug must still end the session in a clear state
            log.exception("session %s failed", self.resource_id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            await self._teardown(error)
            SESSIONS.labels(input_name).dec()
            SESSIONS_ENDED.labels(input_name, "error" if error else "ok").inc()

    async def _supervise(self) -> str | None:
        """Run feeding and event handling until one of them decides the end; returns the error, if any."""
        feeder = asyncio.create_task(self._feed(), name=f"feed-{self.resource_id}")
        events = asyncio.create_task(self._handle_events(), name=f"events-{self.resource_id}")
        watchdog = asyncio.create_task(self._start_watchdog(), name=f"watchdog-{self.resource_id}")
        tasks = {feeder, events, watchdog}
        try:
            while True:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.discard(task)
                    result = task.result()
                    if task is watchdog and result is None:
                        continue  # published in time; keep the others running
                    if task is feeder and result is None:
                        # The source ended cleanly: let the pipeline drain what it has into the room.
                        return await self._drain(events)
                    return result
        finally:
            for task in (feeder, events, watchdog):
                task.cancel()
            await asyncio.gather(feeder, events, watchdog, return_exceptions=True)

    async def _feed(self) -> str | None:
        """Sources → pipeline. Returns None on a clean end (or stop), the error message otherwise."""
        assert self._pipeline is not None
        while (source := await self.slot.next_source()) is not None:
            source.on_attributes(self._set_attributes)
            self._set_attributes(source.attributes)
            async for item in source:
                if item.layer is not None and self._transcode:
                    for chosen in self._transcoded_layer(source, item):
                        self._feed_item(chosen)
                else:
                    self._feed_item(item)
        return self.slot.error

    def _feed_item(self, item: SourceItem) -> None:
        assert self._pipeline is not None
        if isinstance(item, EncodedPacket):
            self.received[f"packets.{item.kind}"] += 1
            self.received[f"bytes.{item.kind}"] += len(item.data)
            self._pipeline.push(item)
        else:
            self._kinds.add(item.kind)
            self._pipeline.add_stream(item)

    def _transcoded_layer(self, source: MediaSource, item: SourceItem) -> list[SourceItem]:
        """A transcoder takes one layer of a simulcast publisher (it makes its own ladder): the best described
        before the first layered packet, fixed for that source — switching input mid-stream would leave the
        decoder without a keyframe.  Layer descriptions wait for that choice; pass-through forwards every layer."""
        if self._layers_of is not source:
            self._layers_of, self._held, self._chosen = source, {}, None
        if isinstance(item, StreamDescription):
            if self._chosen is None:
                self._held[item.layer] = item
                # Announced, though not fed yet: publishing waits for this kind as for any other (a publisher
                # whose audio arrives before its first video packet would otherwise be published audio-only).
                self._kinds.add(item.kind)
            return []
        chosen: list[SourceItem] = []
        if self._chosen is None:
            self._chosen = max((layer for layer in self._held if layer is not None), default=item.layer)
            if self._chosen in self._held:
                chosen.append(self._held[self._chosen])
        if item.layer == self._chosen:
            chosen.append(item)
        return chosen

    async def _start_watchdog(self) -> str | None:
        await asyncio.sleep(self.settings.start_timeout_seconds)
        if not self._published:
            return SOURCE_NOT_READY.message
        return None

    async def _handle_events(self) -> str | None:
        starter: asyncio.Task[None] | None = None
        last_stats = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                event = await self._events.get()
                if isinstance(event, VideoLayersReady | AudioTrackReady):
                    if isinstance(event, VideoLayersReady):
                        self._video_ready = self._video_ready or event
                    else:
                        self._audio_ready = self._audio_ready or event
                    if starter is None:
                        starter = asyncio.create_task(self._start_publisher())
                    if self._tracks_complete():
                        self._all_ready.set()
                elif isinstance(event, InputStateChanged):
                    await self.state.input(
                        event.video.to_proto() if event.video else None, event.audio.to_proto() if event.audio else None
                    )
                elif isinstance(event, StatsUpdated):
                    self._count()
                    if loop.time() - last_stats >= self.settings.stats_report_seconds and (event.video or event.audio):
                        last_stats = loop.time()
                        await self.state.input(
                            event.video.to_proto() if event.video else None,
                            event.audio.to_proto() if event.audio else None,
                        )
                elif isinstance(event, PipelineFailed):
                    return event.message
                elif isinstance(event, UpstreamKeyframeNeeded):
                    self._on_upstream_keyframe_needed(event)
                elif isinstance(event, PipelineEnded):
                    self._pipeline_ended.set()
                if starter is not None and starter.done() and starter.exception() is not None:
                    exc = starter.exception()
                    return exc.message if isinstance(exc, IngressError) else f"room publishing failed: {exc}"
                if self._publisher_error is not None:
                    return self._publisher_error
        finally:
            if starter is not None and not starter.done():
                starter.cancel()

    def _count(self) -> None:
        """What grew since the last report, into the Prometheus totals: the pipeline's counters (the worker's and the
        session-side queue's) and the room publisher's as ``room_<field>`` (frames sent, the pacer's late drops,
        overflow, …), without which an operator cannot see frames lost between the encoder and the room."""
        if self._pipeline is not None:
            self._counters.update(self._pipeline.stats.counters)
        if self._publisher is not None:
            stats = dataclasses.asdict(self._publisher.stats)
            self._counters.update({f"room_{name}": value for name, value in stats.items() if name != "bytes_written"})

    def _tracks_complete(self) -> bool:
        video_ok = "video" not in self._kinds or self._video_ready is not None
        audio_ok = "audio" not in self._kinds or self._audio_ready is not None
        return video_ok and audio_ok

    async def _start_publisher(self) -> None:
        """Publish once every announced kind has a track plan, or after a short wait without the missing one."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.track_wait_seconds):
                await self._all_ready.wait()
        video = audio = None
        if self._video_ready is not None:
            ready = self._video_ready
            video_options = self.info.video
            video = VideoTrackPlan(
                codec=ready.codec,
                layers=ready.layers,
                name=video_options.name or "video",
                source=video_options.source or TrackSource.CAMERA,
            )
        if self._audio_ready is not None:
            ready_audio = self._audio_ready
            audio_options = self.info.audio
            audio = AudioTrackPlan(
                channels=ready_audio.channels,
                bitrate=ready_audio.bitrate,
                disable_dtx=ready_audio.disable_dtx,
                name=audio_options.name or "audio",
                source=audio_options.source or TrackSource.MICROPHONE,
            )
        token = ingress_join_token_for(self.info, self.settings.api_key, self.settings.api_secret)
        signal, self._signal = self._signal, None
        publisher = RoomPublisher(
            self.settings.ws_url,
            token,
            signal=signal,
            held=self._join_hold,
            video=video,
            audio=audio,
            resource_id=self.resource_id,
            # Pass-through frames come paced by the publisher's sender: they go out on arrival.
            options=self.settings.publisher
            if self._transcode
            else replace(self.settings.publisher or PublisherOptions(), pace=False),
            on_keyframe_request=self._on_keyframe_request,
            on_layers_changed=self._on_layers_changed,
            on_event=self._on_publisher_event,
        )
        self._publisher = publisher
        publisher.set_attributes(self._attributes)  # set before the join: the join sends them
        published = await publisher.start()
        # No IDR is forced here: the SFU asks for one per layer as soon as a viewer subscribes, and an IDR forced
        # now would only make that request wait out the encoder's keyframe rate limit (measured: +230-630 ms to a
        # new viewer's first frame).
        self._published = True
        await self.state.publishing(room_id=published.room_sid)

    def _set_attributes(self, attributes: dict[str, str]) -> None:
        """Participant attributes the source read from its media: kept, and set on the room participant."""
        if not attributes:
            return
        self._attributes.update(attributes)
        if self._publisher is not None:
            self._publisher.set_attributes(attributes)

    def _on_frame(self, frame: OutputFrame) -> None:
        # Not only once published: video encoded before and during the room join is held (join_hold.py) and goes
        # out the moment the join is ready.
        if self._publisher is not None:
            self._publisher.write(frame)
        else:
            self._join_hold.add(frame)

    def _on_keyframe_request(self, quality: int) -> None:
        if self._pipeline is not None:
            self._pipeline.request_keyframe(quality)

    def _on_upstream_keyframe_needed(self, event: UpstreamKeyframeNeeded) -> None:
        layer = event.quality
        if layer is None and self._transcode:
            layer = self._chosen  # a restarted transcoder needs one on the layer it is fed (None: the only one)
        self.slot.request_keyframe(layer)

    def _on_layers_changed(self, active: frozenset[int]) -> None:
        self._active_layers = active
        if self._pipeline is None or self._video_ready is None:
            return
        for layer in self._video_ready.layers:
            self._pipeline.set_layer_active(layer.quality, layer.quality in active)

    def _on_publisher_event(self, event: PublisherEvent) -> None:
        if isinstance(event, Disconnected) and event.error is not None and self._stopping is None:
            self._publisher_error = event.error.message
            self._events.put_nowait(_WAKE)

    async def _drain(self, events: "asyncio.Task[str | None]") -> str | None:
        """The source ended: let everything already received reach the room, then end."""
        assert self._pipeline is not None
        self._pipeline.end()
        ended = asyncio.create_task(self._pipeline_ended.wait())
        try:
            done, _ = await asyncio.wait(
                {events, ended}, timeout=self.settings.drain_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
        return events.result() if events in done else None

    async def _teardown(self, error: str | None) -> None:
        self.ending = True
        self.slot.stop(error or self._stopping or "ingress session ended")
        if self._pipeline is not None:
            await asyncio.to_thread(self._pipeline.close)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.close()
        await close_preconnected(self._signal)  # never published: leave the room again
        self._count()  # what happened since the last report
        try:
            if error is not None and self._stopping is None:
                await self.state.fail(error)
            else:
                await self.state.end()
        except IngressError as exc:
            # A newer session of the same ingress owns the record now ("older version"): nothing to correct.
            log.info("session %s: final state not stored: %s", self.resource_id, exc.message)
        finally:
            self._done.set()
            log.info("session %s ended: %s", self.resource_id, error or self._stopping or "source ended")


class _Marker:
    """An event queue item that only wakes the event loop."""


_WAKE: PipelineEvent = _Marker()  # type: ignore[assignment]


def _observe_latency(ingress_type: str, track: str, seconds: float) -> None:
    PACKET_LATENCY.labels(track, ingress_type).observe(seconds)
