"""A media source: one accepted publish as the rest of the data path sees it, whichever front door it came in by.

The front door (producer) puts stream descriptions and encoded packets and ``end``s the source when the encoder
stops; the session (consumer) iterates them with ``async for`` and may ``close(reason)`` it, which makes the front
door hang up on the encoder (e.g. a newer publisher took the stream key).  Descriptions are kept per (kind, layer):
a simulcast WHIP publisher sends two or three video layers (livekit VideoQuality), every other door one (None).

The queue is bounded in items and bytes.  What a full queue does is the front door's choice (``FlowPolicy``),
because it depends on what its transport can do about it:

- ``BLOCK`` (TCP doors: RTMP, SRT, HTTP pull): ``put`` waits, the waiting door stops reading its socket, and TCP
  pushes back on the encoder instead of memory growing.  Nothing is lost here; catching up with real time is the
  pipeline's job (media/flow.py), where the wall-clock budget is known.
- ``DROP_TO_KEYFRAME`` (RTP doors: WHIP): an RTP sender does not slow down, and a receive loop that stops reading
  only moves the loss into the kernel, at random.  So nothing waits; the queue is also bounded in time (``max_delay``
  from the oldest queued packet's arrival to now) and what does not fit is dropped where it does least harm, and
  counted: an audio frame alone, a video packet with the rest of its layer until that layer's next keyframe,
  which the sender is asked for (the rule and why: ingest/flow.py).

The keyframe back-channel runs the other way: the session calls ``request_keyframe(layer)`` when a pipeline that
cannot make a keyframe itself (pass-through) needs one from the publisher — a subscriber's PLI, a layer the room
resumed, a new publisher's first frames — and the source itself asks when it cuts a layer.  A door that can ask
its sender registers ``on_keyframe_request`` and turns it into what its protocol has (RTCP PLI/FIR upstream for
RTP).  Doors whose encoder cannot be asked (RTMP, SRT, files) register nothing and requests are only counted.
Every request is passed on: rate limiting belongs to the door, which knows its RTCP timing (RFC 4585 §3.5) and
what it already asked for.

A door that reads participant attributes out of the media (URL pull: an MPEG-TS's SCTE-35 splices set
``ingress.outOfNetwork.eventID``) calls ``set_attributes``; the session registers ``on_attributes`` and has its
room participant set them.  ``attributes`` keeps what was set, for a session that attaches late.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from enum import StrEnum
from typing import Any

from pyingress.ingest.flow import DropToKeyframe, FlowPolicy, SourceItem, SourceQueue, StreamKey, size_of
from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription
from pyingress.metrics import SOURCE_KEYFRAME_REQUESTS, SOURCE_PACKETS_DROPPED

DEFAULT_MAX_ITEMS = 1024  # ~10 s of 30 fps video plus 48 kHz AAC
DEFAULT_MAX_BYTES = 32 << 20
DEFAULT_MAX_DELAY = 1.0  # DROP_TO_KEYFRAME: seconds a packet may wait for the consumer


class EndReason(StrEnum):
    UNPUBLISHED = "unpublished"  # the encoder said it stopped (RTMP FCUnpublish/deleteStream)
    DISCONNECTED = "disconnected"  # the connection ended without a goodbye (EOF, reset, read timeout)
    CLOSED = "closed"  # the consumer called close()
    ERROR = "error"  # the encoder broke the protocol or sent something we cannot ingest
    SHUTDOWN = "shutdown"  # the server is stopping
    COMPLETE = "complete"  # the media ran to its end (a URL's file or VOD playlist): no reconnect to wait for
    SILENT = "silent"  # no media for the door's media timeout: gone for good (a returning publisher reconnects
    # while the old connection still looks alive, and newest-wins takes over: no grace to wait out after this)


class MediaSource:
    """Descriptions and packets from one publish, plus what the publisher told us about itself."""

    def __init__(
        self,
        *,
        protocol: str,
        stream_key: str,
        app: str = "",
        resource_id: str = "",
        remote_address: str = "",
        flow: FlowPolicy = FlowPolicy.BLOCK,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.protocol = protocol
        self.stream_key = stream_key
        self.app = app
        self.resource_id = resource_id
        self.remote_address = remote_address
        self.flow = flow
        self.started_at = time.time()
        self.metadata: dict[str, Any] = {}
        self.attributes: dict[str, str] = {}  # participant attributes the media set ("" clears one)
        self.descriptions: dict[StreamKey, StreamDescription] = {}
        self.packets_received = 0  # handed to us while live, dropped ones included
        self.bytes_received = 0
        self.packets_dropped: dict[MediaKind, int] = {"audio": 0, "video": 0}
        self.keyframe_requests: dict[int | None, int] = {}  # by video layer
        self.end_reason: EndReason | None = None
        self.error: str | None = None  # what went wrong, for EndReason.ERROR (shown to users as the ingress error)
        self._clock = clock
        self._queue = SourceQueue(max_items, max_bytes, max_delay)
        self._dropping = DropToKeyframe(self._queue)
        self._changed = asyncio.Event()  # set whenever items, space or the end state change
        self._ended = asyncio.Event()
        self._close_handlers: list[Callable[[str], None]] = []
        self._keyframe_handlers: list[Callable[[int | None], None]] = []
        self._attribute_handlers: list[Callable[[dict[str, str]], None]] = []

    def __repr__(self) -> str:
        return f"<MediaSource {self.protocol} key={self.stream_key!r} resource={self.resource_id!r}>"

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    def description(self, kind: MediaKind, layer: int | None = None) -> StreamDescription | None:
        return self.descriptions.get((kind, layer))

    def video_layers(self) -> list[int | None]:
        """The described video layers, best first (HIGH, MEDIUM, LOW); [None] for a single-layer stream."""
        layers = [layer for kind, layer in self.descriptions if kind == "video"]
        return sorted(layers, key=lambda layer: -1 if layer is None else layer, reverse=True)

    # -- consumer side ----------------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[SourceItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[SourceItem]:
        while True:
            while not self._queue:
                if self.ended:
                    return
                self._changed.clear()
                await self._changed.wait()
            item = self._queue.popleft()
            self._changed.set()
            yield item

    def close(self, reason: str) -> None:
        """Stop this source: the front door hangs up on the encoder with ``reason``.  Idempotent."""
        if self.ended:
            return
        self._finish(EndReason.CLOSED, None)
        self._queue.clear()
        for handler in self._close_handlers:
            handler(reason)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def request_keyframe(self, layer: int | None) -> None:
        """Ask the sender for a keyframe on video ``layer`` (None: its only one); counted, ignored once ended."""
        if self.ended:
            return
        self.keyframe_requests[layer] = self.keyframe_requests.get(layer, 0) + 1
        SOURCE_KEYFRAME_REQUESTS.labels(self.protocol).inc()
        for handler in self._keyframe_handlers:
            handler(layer)

    # -- producer side ----------------------------------------------------------------------------------------

    def on_close(self, handler: Callable[[str], None]) -> None:
        """Register what the front door does when the consumer closes the source."""
        self._close_handlers.append(handler)

    def on_keyframe_request(self, handler: Callable[[int | None], None]) -> None:
        """Register how the front door asks its sender for a keyframe on a layer (e.g. RTCP PLI for that SSRC)."""
        self._keyframe_handlers.append(handler)

    async def put(self, item: SourceItem) -> None:
        """Queue an item; ignored once the source has ended.

        BLOCK: waits while the queue is full.  DROP_TO_KEYFRAME: never waits, as ``put_nowait``.
        """
        if self.flow is FlowPolicy.DROP_TO_KEYFRAME:
            self.put_nowait(item)
            return
        size = size_of(item)
        while not self.ended and not self._queue.fits(size):
            self._changed.clear()
            await self._changed.wait()
        if not self.ended:
            self._count_received(item)
            self._append(item, self._clock())

    def put_nowait(self, item: SourceItem) -> bool:
        """Queue an item without waiting; True if it was queued, False if dropped or the source has ended.

        Descriptions are never dropped: they are tiny and nothing of their stream decodes without them.  Under
        BLOCK a full queue raises ``asyncio.QueueFull`` instead: that policy loses nothing, the door awaits ``put``.
        """
        if self.ended:
            return False
        if self.flow is FlowPolicy.BLOCK and not self._queue.fits(size_of(item)):
            raise asyncio.QueueFull
        self._count_received(item)
        if isinstance(item, EncodedPacket) and self.flow is FlowPolicy.DROP_TO_KEYFRAME:
            verdict = self._dropping.offer(item, self._clock())
            self._count_dropped(item.kind, verdict.dropped)
            if verdict.request_keyframe:
                self.request_keyframe(item.layer)
            if verdict.queued is None:
                return False
            self._changed.set()
            return True
        self._append(item, self._clock())
        return True

    def on_attributes(self, handler: Callable[[dict[str, str]], None]) -> None:
        """Register what the session does when the door sets participant attributes (called with the change)."""
        self._attribute_handlers.append(handler)

    def set_attributes(self, attributes: Mapping[str, str]) -> None:
        """Participant attributes read from the media; ignored once the source has ended."""
        if self.ended or not attributes:
            return
        self.attributes.update(attributes)
        for handler in self._attribute_handlers:
            handler(dict(attributes))

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)

    def end(self, reason: EndReason, error: str | None = None) -> None:
        """The publish is over; queued items can still be read.  The first call wins."""
        if not self.ended:
            self._finish(reason, error)

    # -- the queue --------------------------------------------------------------------------------------------

    def _append(self, item: SourceItem, now: float) -> None:
        if isinstance(item, StreamDescription):
            self.descriptions[item.kind, item.layer] = item
        self._queue.append(item, now)
        self._changed.set()

    def _count_received(self, item: SourceItem) -> None:
        if isinstance(item, EncodedPacket):
            self.packets_received += 1
            self.bytes_received += len(item.data)

    def _count_dropped(self, kind: MediaKind, count: int) -> None:
        if count:
            self.packets_dropped[kind] += count
            SOURCE_PACKETS_DROPPED.labels(self.protocol, kind).inc(count)

    def _finish(self, reason: EndReason, error: str | None) -> None:
        self.end_reason = reason
        self.error = error
        self._changed.set()
        self._ended.set()
