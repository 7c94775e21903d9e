"""Flow control at the front door: a source's queue, bounded in items, bytes and time, and the rule for dropping.

Under ``DROP_TO_KEYFRAME`` nothing waits, so what does not fit is dropped where it does least harm:

- an audio frame stands alone: one that does not fit is dropped alone;
- a video packet that does not fit cuts its layer: that layer's packets are dropped until one of its keyframes
  fits, and the sender is asked for that keyframe once per cut; other layers and audio go on;
- the cut layer's packets still queued are dropped too.  They are the stale end of a group of pictures that stops
  at the cut anyway, and they hold the room (items, bytes, age) its keyframe, the largest packet of the group,
  needs: kept, they could refuse that keyframe and the next, and a consumer merely slower than real time would
  leave the layer cut for good.  So a keyframe that fits once they are gone ends the cut at once, unasked;
- a dropped packet's codec configuration is not lost: the next queued packet of its stream carries it.

The age bound is the time from the oldest queued packet's arrival to now: how far behind the consumer is.
"""

from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum

from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription

SourceItem = StreamDescription | EncodedPacket
StreamKey = tuple[MediaKind, int | None]  # one stream of a publish: its kind and video layer (None: the only one)


class FlowPolicy(StrEnum):
    """What a full queue does, chosen by the front door for what its transport can do (ingest/source.py)."""

    BLOCK = "block"  # put() waits, so TCP pushes back on the encoder
    DROP_TO_KEYFRAME = "drop_to_keyframe"  # nothing waits: drop, cutting a video layer to its next keyframe


def stream_of(item: SourceItem) -> StreamKey:
    return item.kind, item.layer


def size_of(item: SourceItem) -> int:
    return len(item.data) if isinstance(item, EncodedPacket) else 0


class SourceQueue:
    """One source's items in arrival order, each with its arrival time (monotonic seconds)."""

    def __init__(self, max_items: int, max_bytes: int, max_delay: float) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_delay = max_delay
        self.bytes = 0
        self._entries: deque[tuple[SourceItem, float]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, size: int, now: float | None = None) -> bool:
        """Room for ``size`` more bytes and, given ``now``, not behind by more than ``max_delay``.

        An empty queue takes anything, so a single item larger than the byte bound still passes.
        """
        if not self._entries:
            return True
        if len(self._entries) >= self.max_items or self.bytes + size > self.max_bytes:
            return False
        if now is None:
            return True
        oldest = next((arrival for item, arrival in self._entries if isinstance(item, EncodedPacket)), now)
        return now - oldest <= self.max_delay

    def append(self, item: SourceItem, now: float) -> None:
        self._entries.append((item, now))
        self.bytes += size_of(item)

    def popleft(self) -> SourceItem:
        item, _ = self._entries.popleft()
        self.bytes -= size_of(item)
        return item

    def remove_stream(self, stream: StreamKey) -> list[EncodedPacket]:
        """Take out the queued packets of one stream, keeping everything else in order; returns them."""
        kept: deque[tuple[SourceItem, float]] = deque()
        removed: list[EncodedPacket] = []
        for entry in self._entries:
            item = entry[0]
            if isinstance(item, EncodedPacket) and stream_of(item) == stream:
                removed.append(item)
            else:
                kept.append(entry)
        self._entries = kept
        self.bytes -= sum(map(size_of, removed))
        return removed

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


@dataclass(frozen=True)
class Verdict:
    """What became of one offered packet."""

    queued: EncodedPacket | None  # the packet as queued (perhaps carrying a lost codec config), None if dropped
    dropped: int  # packets of its stream dropped: itself if so, and on a cut its layer's queued ones
    request_keyframe: bool  # a cut began that only a keyframe from the sender can end


class DropToKeyframe:
    """The ``DROP_TO_KEYFRAME`` rule over a queue: which video layers are cut until their next keyframe."""

    def __init__(self, queue: SourceQueue) -> None:
        self.queue = queue
        self.cut: set[StreamKey] = set()
        self._lost_configs: dict[StreamKey, bytes] = {}

    def offer(self, packet: EncodedPacket, now: float) -> Verdict:
        """Queue ``packet`` if it may go, else drop it, cutting its layer if it is video (module docstring)."""
        stream, size = stream_of(packet), size_of(packet)
        fits = self.queue.fits(size, now)
        dropped, request = 0, False
        if packet.kind == "video" and not fits and stream not in self.cut:
            self.cut.add(stream)
            stale = self.queue.remove_stream(stream)
            self._remember_configs(stale)
            dropped = len(stale)
            fits = self.queue.fits(size, now)
            request = not (packet.keyframe and fits)
        if stream in self.cut:
            fits = fits and packet.keyframe
            if fits:
                self.cut.discard(stream)
        if not fits:
            self._remember_configs([packet])
            # The keyframe a cut layer waits for was dropped too: ask again, or the layer stays cut for good
            # (browsers send keyframes only when asked).  The door rate-limits repeats.
            request = request or (packet.keyframe and stream in self.cut)
            return Verdict(None, dropped + 1, request)
        config = self._lost_configs.pop(stream, None)
        if config is not None and packet.codec_config is None:
            packet = replace(packet, codec_config=config)
        self.queue.append(packet, now)
        return Verdict(packet, dropped, request)

    def _remember_configs(self, dropped: list[EncodedPacket]) -> None:
        for packet in dropped:  # in arrival order: the newest config wins
            if packet.codec_config is not None:
                self._lost_configs[stream_of(packet)] = packet.codec_config
