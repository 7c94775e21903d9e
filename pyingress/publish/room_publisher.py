"""Publishing a session's output into a LiveKit room: join as the ingress, one Opus track, one simulcast video track.

What livekit/ingress does with the Go SDK (ingress.md §1.8), on our own signal client (``livekit/signal.py``) and
aiortc extended with rid simulcast (``webrtc/``):

* join ``/rtc`` with the ingress's token; AddTrackRequest per track (video: top-layer size, ``layers`` and
  ``simulcast_codecs`` with exactly the planned layers); offer/answer; trickle; ``ingress.resourceID`` set as an
  attribute once published, and what the media sets later (``set_attributes``: a SCTE-35 splice's
  ``ingress.outOfNetwork.eventID``, ``attributes.py``); ``leave`` on close (protocol.md §5.3) — one join and its
  handshake are ``room_join.py``'s, which join is current and when to make another are this module's;
* frames (``OutputFrame``) paced on one session clock, late ones dropped and counted (``pacing.py``);
* dynacast: ``subscribed_quality_update`` pauses the layers nobody watches and resumes them on a keyframe, and
  tells the pipeline through ``on_layers_changed`` so it can stop encoding them;
* failures: a lost websocket with a healthy peer connection resumes (``reconnect=1``); anything else — ICE or
  DTLS failure (aiortc cannot restart ICE; first the signal connection gets ``PEER_FAILURE_GRACE`` to say whether
  the server ended us), a refused resume, a leave asking to reconnect — rejoins from scratch,
  up to ``max_rejoins`` times, then ends with "room disconnected unexpectedly" (retryable); the server removing
  us for good (duplicate identity, room deleted, participant removed) ends with "room disconnected";
* watchdogs (ingress.md §1.8): tracks not published within ``publish_timeout`` → "room disconnected
  unexpectedly"; nothing written for ``media_timeout`` → "source encoder not ready".
"""

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

from livekit.protocol import models, rtc

from pyingress.control.errors import (
    ROOM_DISCONNECTED,
    ROOM_DISCONNECTED_UNEXPECTEDLY,
    SOURCE_NOT_READY,
    IngressError,
)
from pyingress.media.packets import OutputFrame
from pyingress.publish.attributes import ParticipantAttributes
from pyingress.publish.join_hold import JoinHold
from pyingress.publish.livekit import signal as sig
from pyingress.publish.pacing import AUDIO, Action, FramePacer
from pyingress.publish.publication import (
    AudioTrackPlan,
    Disconnected,
    Published,
    PublisherEvent,
    PublisherOptions,
    PublisherStats,
    Reconnecting,
    VideoTrackPlan,
)
from pyingress.publish.room_join import Join, JoinRefused, connect_signal, ice_setup
from pyingress.webrtc.peer import PublisherPeer
from pyingress.webrtc.simulcast import assign_rids

__all__ = [
    "AudioTrackPlan",
    "Disconnected",
    "Published",
    "PublisherEvent",
    "PublisherOptions",
    "PublisherStats",
    "Reconnecting",
    "RoomPublisher",
    "VideoTrackPlan",
    "close_preconnected",
    "preconnect",
]

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
# Leave reasons after which coming back would fight the server's decision (ingress.md §1.8: "room disconnected").
FINAL_LEAVE_REASONS = frozenset(
    {
        models.DisconnectReason.DUPLICATE_IDENTITY,
        models.DisconnectReason.PARTICIPANT_REMOVED,
        models.DisconnectReason.ROOM_DELETED,
        models.DisconnectReason.ROOM_CLOSED,
    }
)
# After a peer-connection failure, how long to wait for the signal connection to explain it (a leave) before
# treating it as a network fault; the two come from the server at the same instant.
PEER_FAILURE_GRACE = 1.0
# (join generation, its signal connection or None for the peer connection, why, the server's leave if any)
_Incident = tuple[int, "sig.SignalClient | None", str, "sig.Left | None"]
# Queued frames beyond these counts mean the sender is stuck; further frames are dropped (queues bounded in time
# by the pacer, in items by these).
# How long after pausing the layers of a room with nobody else in it to wait for the server's first dynacast update
# (livekit-server sends it 10 s after the track is published) before concluding that it runs without dynacast.
SERVER_DYNACAST_WAIT = 15.0
MAX_QUEUED_VIDEO = 200  # per layer
MAX_QUEUED_AUDIO = 500
LATENCY_SAMPLES = 2048

# A frame waiting to be sent: when it was written, and whether it goes at once (a keyframe a receiver asked for).
_Queued = tuple[OutputFrame, float, bool]


def _fresh(error: IngressError) -> IngressError:
    """A new instance of one of LiveKit's fixed errors (code and message), so no two sessions share a traceback."""
    return IngressError(error.code, error.message)


def _settle(future: "asyncio.Future[bool]", value: bool) -> None:
    if not future.done():
        future.set_result(value)


def preconnect(ws_url: str, token: str, options: PublisherOptions | None = None) -> "asyncio.Task[sig.SignalClient]":
    """Start joining the room now, before the tracks are known: the websocket and JoinResponse then overlap the
    media worker's start, and the participant is in the room when the first picture is encoded (livekit/ingress
    also joins at session start).  Hand the task to ``RoomPublisher(signal=...)``, or to ``close_preconnected``."""
    timeout = (options or PublisherOptions()).join_timeout
    return asyncio.create_task(connect_signal(ws_url, token, timeout), name="room-preconnect")


async def close_preconnected(signal: "asyncio.Future[sig.SignalClient] | None") -> None:
    """Leave with a pre-opened signal connection nobody used (the session ended before it published); one still
    joining is given up."""
    if signal is None:
        return
    if not signal.done():
        signal.cancel()
        await asyncio.wait({signal})  # neither raises its outcome nor swallows a cancellation of ours
    if not signal.cancelled() and signal.exception() is None:
        await signal.result().close(leave=True)


class RoomPublisher:
    """Publishes one ingress session into its room.  Create, ``await start()``, ``write()`` frames, ``close()``.

    Callbacks run on the event loop: ``on_keyframe_request(quality)`` when a layer needs an IDR (a receiver's
    PLI/FIR, a resumed layer, frames dropped), ``on_layers_changed(active_qualities)`` when dynacast changes the
    set of layers worth encoding, ``on_event(event)`` for Published / Reconnecting / Disconnected.
    """

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        video: VideoTrackPlan | None = None,
        audio: AudioTrackPlan | None = None,
        resource_id: str = "",
        options: PublisherOptions | None = None,
        on_keyframe_request: Callable[[int], None] | None = None,
        on_layers_changed: Callable[[frozenset[int]], None] | None = None,
        on_event: Callable[[PublisherEvent], None] | None = None,
        signal: "asyncio.Future[sig.SignalClient] | None" = None,
        held: JoinHold | None = None,
    ) -> None:
        if video is None and audio is None:
            raise ValueError("nothing to publish: no video and no audio track")
        self.ws_url = ws_url
        self.token = token
        self.video = video
        self.audio = audio
        self.resource_id = resource_id
        self.options = options or PublisherOptions()
        self._on_keyframe_request = on_keyframe_request
        self._on_layers_changed = on_layers_changed
        self._on_event = on_event
        self.stats = PublisherStats()
        self._pacer = FramePacer(self.options.max_late, self.options.resync_after, self.options.max_lead)
        self._qualities = frozenset(layer.quality for layer in video.layers) if video else frozenset()
        self._encodings = assign_rids(self._qualities) if video else ()
        self.active_qualities = self._qualities
        # A queue and a send loop per layer: a layer waits for its own frames only, never behind another's.
        self._video_queues: dict[int, asyncio.Queue[_Queued]] = {
            quality: asyncio.Queue() for quality in self._qualities
        }
        self._urgent: set[int] = set()  # layers a receiver asked a keyframe of, not yet written (``write``)
        self._pacing_waits: dict[int, asyncio.Future[bool]] = {}  # a layer's wait for its frame to come due
        self._audio_queue: asyncio.Queue[_Queued] = asyncio.Queue()
        # Seconds from write() to the frame's last packet handed to the transport, for the latest frames sent
        # (pacing wait included): what the ingest → RTP-out latency adds here.
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self._join: Join | None = None
        self._generation = 0
        self._refreshed_token = ""
        self._incidents: asyncio.Queue[_Incident] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed: asyncio.Future[IngressError | None] | None = None
        self._closing = False
        self._last_bytes_checked = 0
        self._watchdog_finish: asyncio.Task[None] | None = None
        self.attributes = ParticipantAttributes()
        self._sent_first: set[object] = set()  # the keys whose first frame went out (a debug timeline)
        # A signal connection opened before the tracks were known (``preconnect``): the first join uses it.
        self._preconnected = signal
        # Nobody else in the room (``_pause_if_alone``): the layers wait paused until someone joins or asks.
        self._others: set[str] = set()
        self._server_spoke = False  # the server has sent a subscribed-quality update for our video
        self._paused_alone = False
        self._server_silence: asyncio.TimerHandle | None = None  # gives up on a server without dynacast
        # Video encoded before the first join (the session's, from before this publisher existed); None once joined.
        self._held: JoinHold | None = held if held is not None else JoinHold()
        self._held_out: dict[int, list[OutputFrame]] = {}  # what the first join found held: each layer's first frames

    # ------------------------------------------------------------------------------------------------ public

    @property
    def room_sid(self) -> str:
        return self._join.joined.room_sid if self._join else ""

    @property
    def participant_sid(self) -> str:
        return self._join.joined.participant_sid if self._join else ""

    @property
    def published(self) -> bool:
        return self._join is not None and self._join.ready

    @property
    def track_sids(self) -> tuple[str, str]:
        """(audio, video) track sids of the current join ("" for a track not published)."""
        return (self._join.audio_sid, self._join.video_sid) if self._join else ("", "")

    async def start(self) -> Published:
        """Join and publish; returns once media can flow.  Raises ``IngressError`` when that cannot happen."""
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        try:
            async with asyncio.timeout(self.options.publish_timeout):
                join = await self._join_with_retries("initial join", initial=True)
        except TimeoutError:
            join = None
        except JoinRefused as exc:
            error = _fresh(ROOM_DISCONNECTED)
            await self._finish(error, str(exc))
            raise error from exc
        if join is None:
            error = _fresh(ROOM_DISCONNECTED_UNEXPECTEDLY)
            await self._finish(error, "tracks not published in time")
            raise error
        self._tasks += [
            asyncio.create_task(self._supervise(), name="room-publisher-supervisor"),
            asyncio.create_task(self.attributes.run(lambda: self._join), name="room-publisher-attributes"),
            asyncio.create_task(self._media_watchdog(), name="room-publisher-media-watchdog"),
        ]
        for quality, queue in self._video_queues.items():
            sender = self._send_loop(queue, quality)
            self._tasks.append(asyncio.create_task(sender, name=f"room-publisher-video-{quality}"))
        if self.audio is not None:
            self._tasks.append(asyncio.create_task(self._send_loop(self._audio_queue), name="room-publisher-audio"))
        return self._published_event(join)

    def write(self, frame: OutputFrame) -> None:
        """Queue one encoded frame (call on the loop; from another thread use ``loop.call_soon_threadsafe``)."""
        if self._closing:
            return
        if self._held is not None:  # not joined yet: video is kept (join_hold.py); audio needs no keyframe to wait for
            self._held.add(frame)
            return
        self.stats.frames_written += 1
        self.stats.bytes_written += len(frame.data)
        if frame.kind == "video":
            if self.video is None or frame.quality not in self._qualities:
                return
            if frame.quality not in self.active_qualities:
                self.stats.dropped_paused += 1
                return
            queue = self._video_queues[frame.quality]
            urgent = frame.keyframe and frame.quality in self._urgent
            if urgent:
                self._urgent.discard(frame.quality)
                self._supersede(queue)
                waiting = self._pacing_waits.get(frame.quality)
                if waiting is not None:
                    _settle(waiting, True)
            if queue.qsize() >= MAX_QUEUED_VIDEO:
                self.stats.dropped_overflow += 1
                self._pacer.wait_for_keyframe(("video", frame.quality))
                return
            queue.put_nowait((frame, time.monotonic(), urgent))
        elif self.audio is not None:
            if self._audio_queue.qsize() >= MAX_QUEUED_AUDIO:
                self.stats.dropped_overflow += 1
                return
            self._audio_queue.put_nowait((frame, time.monotonic(), False))

    def set_attributes(self, attributes: dict[str, str]) -> None:
        """Set participant attributes ("" removes one): now when published, else with the join (call on the loop)."""
        self.attributes.set(attributes, joined=self.published)

    async def close(self) -> None:
        """Leave the room and stop (idempotent)."""
        await self._finish(None, "closed")

    async def wait_closed(self) -> IngressError | None:
        """Wait until the publisher ends; the error it ended with (None after ``close()``)."""
        assert self._closed is not None, "start() first"
        return await asyncio.shield(self._closed)

    # ------------------------------------------------------------------------------------------------ joining

    async def _join_once(self) -> Join:
        signal = await self._take_preconnected()
        if signal is None:
            signal = await connect_signal(self.ws_url, self.token, self.options.join_timeout)
        joined = signal.joined
        assert joined is not None
        servers, hosts = ice_setup(self.ws_url, self.options, joined)
        self._generation += 1
        generation = self._generation
        peer = PublisherPeer(
            ice_servers=servers,
            host_addresses=hosts,
            audio=(self.audio.channels, not self.audio.disable_dtx) if self.audio else None,
            video_codec=self.video.codec if self.video else None,
            video_encodings=self._encodings,
            on_keyframe_request=self._receiver_wants_keyframe,
            on_failed=lambda: self._incident(generation, None, "peer connection failed"),
        )
        join = Join(generation, signal, peer, joined)
        join.dispatcher = asyncio.create_task(self._dispatch(join), name="room-publisher-signal")
        await join.publish(self.audio, self.video, self.resource_id, self.options.join_timeout)
        return join

    async def _take_preconnected(self) -> "sig.SignalClient | None":
        """The pre-opened signal connection if it joined and is still open (else a fresh one is made)."""
        future, self._preconnected = self._preconnected, None
        if future is None:
            return None
        try:
            signal = await future
        except (sig.SignalClosed, JoinRefused, ConnectionError, TimeoutError, OSError) as exc:
            logger.info("pre-opened signal connection failed (%s): joining afresh", exc)
            return None
        if signal.closed:
            return None
        return signal

    async def _join_with_retries(self, why: str, *, initial: bool) -> Join | None:
        """Join; the new join becomes current.  None when every attempt failed.

        The first join tries once more than ``max_rejoins``; a recovery rejoins up to ``max_rejoins`` times.  Each
        rejoin is announced (Reconnecting) and waits ``rejoin_backoff`` × 1, 2, 4 … first, time for a restarting
        server to come back and for the old participant to be gone.
        """
        attempts = self.options.max_rejoins + (1 if initial else 0)
        for attempt in range(1, attempts + 1):
            if self._closing:
                return None
            rejoin = attempt - 1 if initial else attempt
            if rejoin:
                self._emit(Reconnecting(why, "rejoin", rejoin))
                await asyncio.sleep(self.options.rejoin_backoff * 2 ** (rejoin - 1))
            try:
                join = await self._join_once()
            except JoinRefused:
                raise
            except (sig.SignalClosed, ConnectionError, TimeoutError, OSError, ValueError) as exc:
                logger.warning("room join attempt %d failed: %s", attempt, exc)
                why = str(exc)
                continue
            self._install(join)
            return join
        return None

    def _install(self, join: Join) -> None:
        self._join = join
        join.peer.set_media_clock(self._media_now)
        self._others = set(join.joined.others)
        self._server_spoke = self._paused_alone = False
        self._sent_first.clear()
        if self.active_qualities != self._qualities:
            self.active_qualities = self._qualities  # a new participant starts with every layer wanted
            if self._on_layers_changed is not None:
                self._on_layers_changed(self.active_qualities)
        if self._held is not None:  # the first join: what was encoded meanwhile goes first (join_hold.py)
            self._held_out = {quality: self._held.take(quality) for quality in self._qualities}
            self._held = None
        for quality in self._qualities:
            if not self._held_out.get(quality):
                self._pacer.wait_for_keyframe(("video", quality))
                self._request_keyframe(quality, "joined")
        self.attributes.resend()  # a new participant has none of them
        self._emit(self._published_event(join))

    def _media_now(self) -> float | None:
        """The media time the pacer has due now: every stream's sender reports map the wall clock by it, so the
        SFU sees the layers (and audio) on one timeline even when a keyframe leaves ahead of its queue."""
        clock = self._pacer.clock
        if not self.options.pace or clock.origin_media is None:
            return None
        return clock.origin_media + (time.monotonic() - clock.origin_wall)

    def _published_event(self, join: Join) -> Published:
        j = join.joined
        return Published(j.room_sid, j.room_name, j.participant_sid, join.audio_sid, join.video_sid)

    # ------------------------------------------------------------------------------------------------ signal events

    async def _dispatch(self, join: Join) -> None:
        signal = join.signal
        try:
            async for event in signal.events():
                await self._on_signal(join, event)
        except sig.SignalClosed as exc:
            join.break_handshake(exc.reason)
            self._incident(join.generation, signal, exc.reason)

    async def _on_signal(self, join: Join, event: sig.SignalEvent) -> None:
        if await join.on_signal(event):
            return
        if isinstance(event, sig.SubscribedQualities):
            if event.track_sid == join.video_sid:
                self._on_subscribed_qualities(event)
        elif isinstance(event, sig.ParticipantsChanged):
            self._on_participants(join, event)
        elif isinstance(event, sig.Left):
            reason = f"server sent leave ({event.reason_name})"
            join.break_handshake(reason)
            self._incident(join.generation, join.signal, reason, event)
        elif isinstance(event, sig.TokenRefreshed):
            self._refreshed_token = event.token

    def _on_subscribed_qualities(self, event: sig.SubscribedQualities) -> None:
        if not self.options.dynacast or self.video is None:
            return
        enabled = event.for_codec(self.video.codec)
        if enabled is None:
            return
        self._server_spoke = True  # from now on the server's dynacast alone decides
        self._paused_alone = False
        self._stop_waiting_for_server()
        self._set_active(frozenset(q for q in self._qualities if q in enabled), "dynacast")

    def _on_participants(self, join: Join, event: sig.ParticipantsChanged) -> None:
        self._others.update(sid for sid in event.present if sid != join.joined.participant_sid)
        self._others.difference_update(event.gone)
        if self._paused_alone and self._others:
            self._paused_alone = False
            self._set_active(self._qualities, "someone joined the room")

    def _pause_if_alone(self) -> None:
        """Dynacast before the server's: with nobody else in the room, encoding video is for no one.

        livekit-server says so itself only 10 s after the track is published (its first subscribed-quality update
        waits that long), and until then the session would encode every layer for nobody.  Once every layer has
        sent a first frame (the server knows the track and its layers) and neither another participant nor a
        server update has come, every layer pauses.  A participant joining resumes them, and so does the server
        asking for a layer (a hidden subscriber such as egress makes it ask).  A server that has still said
        nothing ``SERVER_DYNACAST_WAIT`` after the pause runs without dynacast and would never ask: every layer
        resumes for good.  Audio goes on throughout, since nothing would tell us that a hidden subscriber listens.
        """
        if (
            self.options.dynacast
            and not self._others
            and not self._server_spoke
            and not self._paused_alone
            and self._server_silence is None
            and self.active_qualities
            and all(("video", q) in self._sent_first for q in self._qualities)
        ):
            self._paused_alone = True
            self._set_active(frozenset(), "nobody else in the room")
            loop = asyncio.get_running_loop()
            self._server_silence = loop.call_later(SERVER_DYNACAST_WAIT, self._server_without_dynacast)

    def _server_without_dynacast(self) -> None:
        if self._paused_alone and not self._server_spoke:
            self._paused_alone = False
            self._set_active(self._qualities, "the server sends no dynacast updates")

    def _stop_waiting_for_server(self) -> None:
        if self._server_silence is not None:
            self._server_silence.cancel()

    def _set_active(self, active: frozenset[int], why: str) -> None:
        if active == self.active_qualities:
            return
        resumed = active - self.active_qualities
        self.active_qualities = active
        logger.info("dynacast: layers %s active (%s)", sorted(active), why)
        for quality in resumed:
            self._pacer.wait_for_keyframe(("video", quality))
        if self._on_layers_changed is not None:
            self._on_layers_changed(active)
        for quality in resumed:
            self._request_keyframe(quality, "resumed")

    # ------------------------------------------------------------------------------------------------ media

    def _request_keyframe(self, quality: int, why: str = "") -> None:
        logger.debug("keyframe wanted on layer %d (%s)", quality, why)
        self.stats.keyframe_requests += 1
        if self._on_keyframe_request is not None:
            self._on_keyframe_request(quality)

    async def _send_held(self, quality: int) -> None:
        """Layer ``quality``'s frames held during the first join, at once: they are behind the clock already, and
        the pacer's clock then starts on the first live frame."""
        for frame in self._held_out.pop(quality, []):
            join = self._join
            if quality not in self.active_qualities:
                return
            if join is None or not await self._send(join, frame):
                self._pacer.wait_for_keyframe(("video", quality))
                self._request_keyframe(quality, "held frames not sent")
                return
            self._sent(("video", quality), frame)

    def _supersede(self, queue: "asyncio.Queue[_Queued]") -> None:
        """Drop a layer's queued frames ahead of the keyframe a receiver asked for.

        That receiver (a viewer just subscribed, a layer switch) sees nothing until the keyframe comes, and the
        frames queued before it only make it wait: video waits in the queue for the audio of its instant (lip
        sync), 100-150 ms when the source sends its audio that much behind its video (ffmpeg pushing an MP4 whose
        audio is stored in larger chunks).  Nothing after a keyframe refers to them, so the layer's other viewers
        just skip those pictures.
        """
        while not queue.empty():
            queue.get_nowait()
            self.stats.dropped_superseded += 1

    def _sent(self, key: object, frame: OutputFrame) -> None:
        if key not in self._sent_first:
            self._sent_first.add(key)
            logger.debug("first frame sent: %s (keyframe %s)", key, frame.keyframe)
            if frame.kind == "video":
                self._pause_if_alone()
        self.stats.frames_sent += 1

    async def _superseded_within(self, quality: int, delay: float) -> bool:
        """Wait ``delay`` for layer ``quality``'s frame to come due; True if an urgent keyframe came meanwhile."""
        # A future and a timer, as asyncio.sleep makes, rather than a timeout around an event: that one ends in a
        # cancellation and an exception for every frame, at 90 frames a second.
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[bool] = loop.create_future()
        self._pacing_waits[quality] = waiting
        timer = loop.call_later(delay, _settle, waiting, False)
        try:
            return await waiting
        finally:
            timer.cancel()
            del self._pacing_waits[quality]

    def _receiver_wants_keyframe(self, quality: int) -> None:
        if quality in self.active_qualities:
            self._urgent.add(quality)
            self._request_keyframe(quality, "receiver")

    async def _send_loop(self, queue: "asyncio.Queue[_Queued]", quality: int | None = None) -> None:
        """Pace and send one queue's frames: audio's, or video layer ``quality``'s."""
        loop = asyncio.get_running_loop()
        if quality is not None:
            await self._send_held(quality)
        while True:
            frame, written_at, urgent = await queue.get()
            join = self._join
            video = frame.kind == "video"
            key = ("video", frame.quality) if video else AUDIO
            if join is None or not join.ready:
                self.stats.dropped_disconnected += 1
                if video:
                    self._pacer.wait_for_keyframe(key)
                continue
            if video and frame.quality not in self.active_qualities:
                self.stats.dropped_paused += 1
                continue
            media_time = float(frame.pts * frame.time_base)
            # loop.time() is time.monotonic(), the clock write() stamps frames with.
            decision = self._pacer.decide(key, media_time, frame.keyframe or not video, loop.time(), written_at)
            if decision.resynced:
                self.stats.resyncs += 1
            if decision.action is Action.DROP:
                if decision.late:
                    self.stats.dropped_late += 1
                else:
                    self.stats.dropped_waiting_keyframe += 1
                if video and decision.request_keyframe and frame.quality is not None:
                    self._request_keyframe(frame.quality, "dropped")
                continue
            # A keyframe a receiver asked for goes at once, however early: it is what a viewer who has just
            # subscribed waits for, and video is early only by waiting for its audio (lip sync), which one picture
            # ahead does not disturb.
            if decision.delay > 0 and self.options.pace and not urgent:
                if quality is None:
                    await asyncio.sleep(decision.delay)
                elif await self._superseded_within(quality, decision.delay):
                    self.stats.dropped_superseded += 1  # a keyframe a receiver asked for came meanwhile
                    continue
            if await self._send(join, frame):
                self._sent(key, frame)
                self.latencies.append(time.monotonic() - written_at)
            elif video:
                self._pacer.wait_for_keyframe(key)

    async def _send(self, join: Join, frame: OutputFrame) -> bool:
        if not join.ready:
            self.stats.dropped_disconnected += 1
            return False
        try:
            if frame.kind == "video":
                assert frame.quality is not None
                timestamp = round(frame.pts * frame.time_base * VIDEO_CLOCK)
                await join.peer.send_video(frame.quality, frame.data, timestamp)
            else:
                await join.peer.send_audio(frame.data, frame.pts, frame.time_base)
        except ConnectionError:
            self.stats.dropped_disconnected += 1
            return False
        return True

    async def _media_watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.options.media_timeout)
            if self.stats.bytes_written == self._last_bytes_checked:
                self._watchdog_finish = asyncio.create_task(self._finish(_fresh(SOURCE_NOT_READY), "no media written"))
                return
            self._last_bytes_checked = self.stats.bytes_written

    # ------------------------------------------------------------------------------------------------ failures

    def _incident(
        self, generation: int, signal: sig.SignalClient | None, reason: str, left: sig.Left | None = None
    ) -> None:
        """Report trouble with join ``generation`` (its signal connection ``signal``, None: its peer connection)."""
        if not self._closing:
            self._incidents.put_nowait((generation, signal, reason, left))

    async def _supervise(self) -> None:
        while not self._closing:
            generation, signal, reason, left = await self._incidents.get()
            join = self._join
            if join is None or generation != join.generation or (signal is not None and signal is not join.signal):
                continue  # about a join or a signal connection already replaced
            if signal is None:
                # The server ending us (room deleted, participant removed) closes the peer connection and sends a
                # leave at the same moment, and the leave can be processed second. Rejoining on the peer failure
                # alone would re-create a deleted room: give the signal connection a moment to say which it is.
                told = await self._signal_word(generation)
                if told is not None:
                    generation, signal, reason, left = told
            if (
                left is not None
                and left.action == rtc.LeaveRequest.Action.DISCONNECT
                and left.reason in FINAL_LEAVE_REASONS
            ):
                await self._finish(_fresh(ROOM_DISCONNECTED), reason)
                return
            logger.warning("room connection trouble: %s", reason)
            signal_only = signal is not None and (left is None or left.action == rtc.LeaveRequest.Action.RESUME)
            peer_alive = not join.peer.failed.is_set() and join.peer.connected.is_set()
            if signal_only and peer_alive and await self._resume(join, reason):
                continue
            join.ready = False
            await join.close(leave=False)
            try:
                replacement = await self._join_with_retries(reason, initial=False)
            except JoinRefused as exc:
                await self._finish(_fresh(ROOM_DISCONNECTED), str(exc))
                return
            if replacement is None:
                await self._finish(_fresh(ROOM_DISCONNECTED_UNEXPECTEDLY), f"rejoin failed after: {reason}")
                return
            self.stats.rejoins += 1

    async def _signal_word(self, generation: int) -> _Incident | None:
        """The next incident of join ``generation`` from its signal connection, within ``PEER_FAILURE_GRACE``."""
        try:
            async with asyncio.timeout(PEER_FAILURE_GRACE):
                while True:
                    incident = await self._incidents.get()
                    if incident[0] == generation and incident[1] is not None:
                        return incident
        except TimeoutError:
            return None

    async def _resume(self, join: Join, reason: str) -> bool:
        """Reconnect the websocket to the same participant (``reconnect=1``) while media keeps flowing."""
        self._emit(Reconnecting(reason, "resume", 1))
        if join.dispatcher is not None:
            join.dispatcher.cancel()
            await asyncio.gather(join.dispatcher, return_exceptions=True)
        with contextlib.suppress(Exception):
            await join.signal.close(leave=False)
        try:
            signal = await sig.SignalClient.connect(
                self.ws_url,
                self._refreshed_token or self.token,
                reconnect_sid=join.joined.participant_sid,
                timeout=self.options.join_timeout,
            )
        except sig.SignalClosed as exc:
            logger.warning("resume failed: %s", exc.reason)
            return False
        if signal.state.reconnected is None:  # a server that answered a resume with a fresh join
            await signal.close(leave=False)
            return False
        join.signal = signal
        join.dispatcher = asyncio.create_task(self._dispatch(join), name="room-publisher-signal")
        join.ready = True
        self.stats.resumes += 1
        logger.info("signal connection resumed")
        self.attributes.resend()  # an update may have been lost with the old connection
        return True

    async def _finish(self, error: IngressError | None, reason: str) -> None:
        if self._closing:
            if self._closed is not None:
                await asyncio.shield(self._closed)
            return
        self._closing = True
        self._stop_waiting_for_server()
        await close_preconnected(self._preconnected)
        self._preconnected = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        if self._join is not None:
            with contextlib.suppress(Exception):
                await self._join.close(leave=True)
        if error is not None:
            logger.warning("room publisher ended: %s (%s)", error.message, reason)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(error)
        self._emit(Disconnected(error, reason))

    def _emit(self, event: PublisherEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("room publisher event handler failed")
