"""The dashboard's live feed: Server-Sent Events to every open page, pushed when something changes.

Ingress changes arrive from the control plane's changes feed (a create, an update, a session's state) and go out
at once as an ``ingress`` event; the running sessions' figures go out as a ``stats`` event every
``STATS_INTERVAL_S`` while a page is open and a session runs.  A page that falls behind (its queue full) is cut
off rather than held in memory: its EventSource reconnects and starts again from a fresh snapshot.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("pyingress.web")

QUEUE_EVENTS = 256
KEEPALIVE_S = 15.0
_CLOSE = ""  # queued to end a page's stream


def sse_event(name: str, data: Any) -> str:
    """One event in the text/event-stream format (the JSON is on one line: no newline can split it)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class LiveFeed:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str]] = set()
        self.closed = False

    @property
    def listeners(self) -> int:
        return len(self._queues)

    def publish(self, name: str, data: Any) -> None:
        if not self._queues:
            return
        text = sse_event(name, data)
        for queue in list(self._queues):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                log.info("dashboard page too slow for its live feed: cut off (it reconnects)")
                self._drop(queue)

    def forget(self, queue: "asyncio.Queue[str]") -> None:
        self._queues.discard(queue)

    def _drop(self, queue: "asyncio.Queue[str]") -> None:
        self._queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_CLOSE)

    def subscribe(self) -> "Subscription":
        """Events from now on; take the snapshot *after* this, so no change falls between the two."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_EVENTS)
        if self.closed:
            queue.put_nowait(_CLOSE)
        else:
            self._queues.add(queue)
        return Subscription(self, queue)

    def close(self) -> None:
        """End every page's stream (the service is stopping)."""
        self.closed = True
        for queue in list(self._queues):
            self._drop(queue)


class Subscription:
    def __init__(self, feed: LiveFeed, queue: "asyncio.Queue[str]") -> None:
        self._feed = feed
        self._queue = queue

    async def events(self) -> AsyncIterator[str]:
        """Every event published since subscribing, with a comment line as keep-alive when nothing happens
        (proxies drop silent connections); ends when the feed closes or cuts this page off."""
        try:
            while True:
                try:
                    text = await asyncio.wait_for(self._queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if text == _CLOSE:
                    return
                yield text
        finally:
            self.close()

    def close(self) -> None:
        self._feed.forget(self._queue)
