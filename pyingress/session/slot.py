"""The place in a session that one publisher's source fills at a time, and how it is handed over.

Every push door shares these rules (beyond LiveKit, which ends the session with its first publisher):

- **Newest wins.** A source attached while another plays closes the one playing ("replaced by a newer publisher
  on the same stream key"); a second encoder on the same key takes over instead of both dropping.
- **Reconnect grace.** A source that ends without a goodbye (connection lost) or unpublishes may be followed by
  another within ``grace_seconds``: the session, its pipeline and its room participant carry on.
- Anything else ends the slot: a clean end of a source nobody replaces, a source error (its message becomes the
  session's error), ``stop()``, or the grace window passing.

The consumer loop is::

    while (source := await slot.next_source()) is not None:
        async for item in source: ...
    error = slot.error
"""

import asyncio
import logging

from pyingress.ingest.source import EndReason, MediaSource

log = logging.getLogger("pyingress.session")

# Sources that end like this may be followed by a reconnect; anything else ends the slot.
RECOVERABLE_ENDS = (EndReason.DISCONNECTED, EndReason.UNPUBLISHED)
REPLACED = "replaced by a newer publisher on the same stream key"


class SourceSlot:
    def __init__(self, grace_seconds: float, name: str = "") -> None:
        self.grace_seconds = grace_seconds
        self.name = name  # for logs: the session's resource id
        self.current: MediaSource | None = None
        self.attached = 0  # sources ever attached, the first included
        self.error: str | None = None  # set when the slot ended because its source failed
        self._waiting: list[MediaSource] = []  # attached, not yet playing (oldest first)
        self._changed = asyncio.Event()
        self._stopped: str | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped is not None

    def attach(self, source: MediaSource) -> None:
        """The (next) publisher's source; it replaces the one playing.  After ``stop`` it is closed at once."""
        self.attached += 1
        if self._stopped is not None:
            source.close(self._stopped)
            return
        self._waiting.append(source)
        self._changed.set()
        if self.current is not None and not self.current.ended:
            self.current.close(REPLACED)

    def stop(self, reason: str) -> None:
        """End the slot now: the playing source, any waiting one and any attached later are closed with
        ``reason`` (a publisher that arrives while its session tears down must not wait on a source nobody reads)."""
        if self._stopped is None:
            self._stopped = reason
        self._close_all(reason)
        self._changed.set()

    def request_keyframe(self, layer: int | None) -> None:
        """Ask the playing publisher for a keyframe on ``layer`` (its front door decides how, or counts it)."""
        if self.current is not None and not self.current.ended:
            self.current.request_keyframe(layer)

    async def next_source(self) -> MediaSource | None:
        """The source to play next, or None when the slot is done (see the module docstring for the rules)."""
        ended = self.current
        if ended is not None and not self._waiting and self._stopped is None:
            if ended.end_reason == EndReason.ERROR:
                self.error = ended.error or "source error"
                return None
            if ended.end_reason not in RECOVERABLE_ENDS:
                return None
            log.info(
                "session %s: source ended (%s), waiting %.1f s for a reconnect",
                self.name,
                ended.end_reason,
                self.grace_seconds,
            )
        try:
            if ended is None:
                await self._wait_for_source()
            else:
                async with asyncio.timeout(self.grace_seconds):
                    await self._wait_for_source()
        except TimeoutError:
            return None
        if self._stopped is not None:
            return None
        # Several publishers arrived while the last one played: only the newest plays.
        newest = self._waiting.pop()
        for skipped in self._waiting:
            skipped.close(REPLACED)
        self._waiting.clear()
        self.current = newest
        return newest

    async def _wait_for_source(self) -> None:
        while not self._waiting and self._stopped is None:
            self._changed.clear()
            await self._changed.wait()

    def _close_all(self, reason: str) -> None:
        if self.current is not None and not self.current.ended:
            self.current.close(reason)
        for waiting in self._waiting:
            waiting.close(reason)
        self._waiting.clear()
