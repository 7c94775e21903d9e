"""Flow control: queues bounded in time, the frame-rate cap.

When the pipeline falls behind real time it must not build latency (DESIGN.md: "queues are bounded in time"):

- compressed input waits in a ``PacketQueue``; once its oldest packet is older than ``max_delay`` and a newer
  video keyframe is queued, everything before that keyframe is dropped at once (decoding can restart there
  cleanly) and counted;
- decoded frames wait per layer in a ``LayerQueue``; a frame older than ``max_delay`` when its encoder gets to it
  is skipped (re-encoding, so skipping a raw frame breaks nothing), and a full queue (12 frames) loses its oldest;
  one slow layer thus loses frame rate on its own instead of stalling the others.

Time is passed in (monotonic nanoseconds), so both are testable without sleeping.
"""

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyingress.media.packets import EncodedPacket

T = TypeVar("T")


@dataclass(frozen=True)
class QueuedPacket:
    packet: EncodedPacket | None  # None for a marker
    arrival_ns: int
    marker: object = None  # an ordered control item (stream description, end of stream): never dropped


class PacketQueue:
    """FIFO of compressed packets for one session, dropping to the newest keyframe when its head is too old.

    Markers keep their place among the packets (a stream description must precede its packets, the end of
    stream must follow them) and survive any drop.
    """

    def __init__(self, max_delay: float | None, max_items: int = 5000) -> None:
        self.max_delay_ns = None if max_delay is None else int(max_delay * 1e9)
        self.max_items = max_items  # a memory bound for a stuck consumer; far above any sane backlog
        self._items: collections.deque[QueuedPacket] = collections.deque()
        self.dropped_packets = 0
        self.keyframe_skips = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, packet: EncodedPacket, arrival_ns: int) -> None:
        self._items.append(QueuedPacket(packet, arrival_ns))
        if packet.kind == "video" and packet.keyframe:
            self._trim(arrival_ns)
        while len(self._items) > self.max_items:
            self._drop_first_packet()

    def put_marker(self, marker: object, arrival_ns: int) -> None:
        self._items.append(QueuedPacket(None, arrival_ns, marker))

    def get(self, now_ns: int) -> QueuedPacket | None:
        self._trim(now_ns)
        return self._items.popleft() if self._items else None

    def delay(self, now_ns: int) -> float:
        """Seconds the oldest queued item has waited."""
        return (now_ns - self._items[0].arrival_ns) / 1e9 if self._items else 0.0

    def _drop_first_packet(self) -> None:
        for index, item in enumerate(self._items):
            if item.packet is not None:
                del self._items[index]
                self.dropped_packets += 1
                return

    def _stale(self, item: QueuedPacket, now_ns: int) -> bool:
        return self.max_delay_ns is not None and now_ns - item.arrival_ns > self.max_delay_ns

    def _trim(self, now_ns: int) -> None:
        if not self._items or not self._stale(self._items[0], now_ns):
            return
        newest_keyframe = None
        for index in range(len(self._items) - 1, 0, -1):
            packet = self._items[index].packet
            if packet is not None and packet.kind == "video" and packet.keyframe:
                newest_keyframe = index
                break
        if newest_keyframe is not None:
            markers = []
            for _ in range(newest_keyframe):
                item = self._items.popleft()
                if item.packet is None:
                    markers.append(item)
                else:
                    self.dropped_packets += 1
            self._items.extendleft(reversed(markers))
            self.keyframe_skips += 1
        # Audio frames stand alone: stale ones go even when video must wait for a keyframe.
        while self._items:
            head = self._items[0].packet
            if head is None or head.kind != "audio" or not self._stale(self._items[0], now_ns):
                break
            self._items.popleft()
            self.dropped_packets += 1


class FrameRateCap:
    """Keeps at most ``max_rate`` frames per second of media time; never duplicates, so a slower source stays slow.

    Media time is cut into slots of one output interval; the first frame of each slot is kept.  Slots are shifted
    by a quarter interval so that a source at exactly the cap, with jitter, keeps every frame, while 30 fps into
    25 keeps exactly 25 of every 30 and 60 into 30 every other one.
    """

    def __init__(self, max_rate: float) -> None:
        self.interval = 1_000_000 / max_rate if max_rate > 0 else 0.0
        self._origin: int | None = None
        self._last_slot = -1
        self._last_pts = 0
        self.dropped = 0

    def admit(self, pts_us: int) -> bool:
        if self.interval == 0:
            return True
        if self._origin is None or pts_us < self._last_pts - 1_000_000:
            self._origin = pts_us  # first frame, or timestamps went far back: start over rather than stall
            self._last_slot = -1
        self._last_pts = pts_us
        slot = int((pts_us - self._origin + self.interval / 4) // self.interval)
        if slot <= self._last_slot:
            self.dropped += 1
            return False
        self._last_slot = slot
        return True


class LayerQueue(Generic[T]):
    """Hand-over from the decode thread to one layer's encoder thread: a few items, stale ones skipped."""

    def __init__(self, max_delay: float | None, max_items: int | None = None) -> None:
        self.max_delay_ns = None if max_delay is None else int(max_delay * 1e9)
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        # A 1080p frame is 3 MB: live, 12 frames (400 ms at 30 fps) ride out a burst; with back-pressure 4 suffice.
        self._max_items = max_items if max_items is not None else (4 if max_delay is None else 12)
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T, enqueued_ns: int) -> None:
        with self._cond:
            if self.max_delay_ns is None:
                # Every frame must be encoded (file sources): back-pressure instead of dropping.
                while len(self._items) >= self._max_items and not self._closed:
                    self._cond.wait()
            elif len(self._items) >= self._max_items:
                self._items.popleft()
                self.dropped += 1
            self._items.append((item, enqueued_ns))
            self._cond.notify_all()

    def get(self, now_ns_fn: Callable[[], int]) -> T | None:
        """The next fresh item, blocking; None once closed and drained."""
        with self._cond:
            while True:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return None
                item, enqueued = self._items.popleft()
                self._cond.notify_all()
                if self.max_delay_ns is not None and now_ns_fn() - enqueued > self.max_delay_ns:
                    self.dropped += 1
                    continue
                return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
