"""A media source: one accepted publish as the rest of the data path sees it, whichever front door it came in by.

The front door (producer) ``put``s stream descriptions and encoded packets and ``end``s the source when the
encoder stops; the session (consumer) iterates them with ``async for`` and may ``close(reason)`` it, which makes
the front door hang up on the encoder (e.g. a newer publisher took the stream key).

The queue is bounded in items and bytes.  A full queue makes ``put`` wait, and a waiting front door stops reading
its socket, so TCP pushes back on the encoder instead of memory growing; dropping to the next keyframe when the
pipeline falls behind is the pipeline's job, where the wall-clock budget is known (DESIGN.md "data path").
"""

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Any

from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription

SourceItem = StreamDescription | EncodedPacket

DEFAULT_MAX_ITEMS = 1024  # ~10 s of 30 fps video plus 48 kHz AAC
DEFAULT_MAX_BYTES = 32 << 20


class EndReason(StrEnum):
    UNPUBLISHED = "unpublished"  # the encoder said it stopped (RTMP FCUnpublish/deleteStream)
    DISCONNECTED = "disconnected"  # the connection ended without a goodbye (EOF, reset, read timeout)
    CLOSED = "closed"  # the consumer called close()
    ERROR = "error"  # the encoder broke the protocol or sent something we cannot ingest
    SHUTDOWN = "shutdown"  # the server is stopping


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
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.protocol = protocol
        self.stream_key = stream_key
        self.app = app
        self.resource_id = resource_id
        self.remote_address = remote_address
        self.started_at = time.time()
        self.metadata: dict[str, Any] = {}
        self.descriptions: dict[MediaKind, StreamDescription] = {}
        self.packets_received = 0
        self.bytes_received = 0
        self.end_reason: EndReason | None = None
        self.error: str | None = None  # what went wrong, for EndReason.ERROR (shown to users as the ingress error)
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._queue: deque[SourceItem] = deque()
        self._queued_bytes = 0
        self._changed = asyncio.Event()  # set whenever items, space or the end state change
        self._ended = asyncio.Event()
        self._close_handlers: list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"<MediaSource {self.protocol} key={self.stream_key!r} resource={self.resource_id!r}>"

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

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
            self._queued_bytes -= _size(item)
            self._changed.set()
            yield item

    def close(self, reason: str) -> None:
        """Stop this source: the front door hangs up on the encoder with ``reason``.  Idempotent."""
        if self.ended:
            return
        self._finish(EndReason.CLOSED, None)
        self._queue.clear()
        self._queued_bytes = 0
        for handler in self._close_handlers:
            handler(reason)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # -- producer side ----------------------------------------------------------------------------------------

    def on_close(self, handler: Callable[[str], None]) -> None:
        """Register what the front door does when the consumer closes the source."""
        self._close_handlers.append(handler)

    async def put(self, item: SourceItem) -> None:
        """Queue an item, waiting while the queue is full; dropped silently once the source has ended."""
        size = _size(item)
        while (
            not self.ended
            and self._queue
            and (len(self._queue) >= self._max_items or self._queued_bytes + size > self._max_bytes)
        ):
            self._changed.clear()
            await self._changed.wait()
        if self.ended:
            return
        if isinstance(item, StreamDescription):
            self.descriptions[item.kind] = item
        else:
            self.packets_received += 1
            self.bytes_received += size
        self._queue.append(item)
        self._queued_bytes += size
        self._changed.set()

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)

    def end(self, reason: EndReason, error: str | None = None) -> None:
        """The publish is over; queued items can still be read.  The first call wins."""
        if not self.ended:
            self._finish(reason, error)

    def _finish(self, reason: EndReason, error: str | None) -> None:
        self.end_reason = reason
        self.error = error
        self._changed.set()
        self._ended.set()


def _size(item: SourceItem) -> int:
    return len(item.data) if isinstance(item, EncodedPacket) else 0
