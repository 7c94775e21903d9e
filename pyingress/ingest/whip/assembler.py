"""RTP packets of one SSRC → complete frames in order, with what to NACK and when to give up (sans-IO).

No playout delay: a frame goes out the moment its last packet is in and every frame before it went out (that is
all pass-through may add, ``≤ 10 ms`` p95 in the issue).  Only a gap makes anything wait:

- the missing sequence numbers are offered for NACK (``nack_due``) at once and again every ``nack_interval``,
  up to ``nack_retries`` times (RFC 4585 §6.2.1), so a retransmission can fill the gap;
- frames behind the gap wait at most ``max_wait`` seconds from when the gap was seen (pass-through keeps this
  short: a viewer is better served by a keyframe than by a long stall; transcoding waits longer, as
  livekit/ingress's jitter buffer does with 600 ms for video);
- then the assembler gives up on what is missing: it resumes at the first packet after the gap that can start a
  frame (``is_start``), and the next frame it hands out carries ``after_loss`` — a decoder or a viewer can only
  pick up again at a keyframe, which the caller asks the publisher for.

A frame is the packets from the resume point up to the one with the marker bit, all with one RTP timestamp; a
change of timestamp also ends a frame (for senders that leave the marker off).  Payload-less packets (padding,
bandwidth probes) take up sequence numbers and nothing else.  Audio (``whole_packets``) has one frame per packet.

Bounded: at most ``max_packets`` are held; beyond that the oldest are given up as if their wait had expired.
"""

from collections.abc import Callable
from dataclasses import dataclass

SEQ_MOD = 1 << 16


@dataclass(frozen=True)
class AssembledFrame:
    timestamp: int  # RTP timestamp, extended past 32-bit wraparounds
    payloads: tuple[bytes, ...]
    first_seq: int  # extended sequence numbers
    last_seq: int
    arrival: float  # when its last packet arrived
    after_loss: bool  # packets before it were given up: only a keyframe can be trusted now


@dataclass
class _Held:
    timestamp: int
    marker: bool
    payload: bytes
    arrival: float


@dataclass
class AssemblerCounters:
    packets: int = 0
    frames: int = 0
    duplicates: int = 0  # already held
    late: int = 0  # arrived after its frame went out or was given up
    lost: int = 0  # sequence numbers given up on
    before_start: int = 0  # dropped while waiting for a first frame start
    nacks: int = 0  # sequence numbers NACKed (each retry counted)
    recovered: int = 0  # NACKed and then arrived


@dataclass
class _Nack:
    sent_at: float
    retries: int


def unwrap(value: int, reference: int | None, modulus: int) -> int:
    """``value`` (mod ``modulus``) extended to the integer nearest ``reference`` (an extended value)."""
    if reference is None:
        return value
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta


class FrameAssembler:
    def __init__(
        self,
        *,
        is_start: Callable[[bytes], bool],
        whole_packets: bool = False,
        max_wait: float = 0.1,
        max_packets: int = 2048,
        nack_interval: float = 0.05,
        nack_retries: int = 3,
    ) -> None:
        self.is_start = is_start
        self.whole_packets = whole_packets
        self.max_wait = max_wait
        self.max_packets = max_packets
        self.nack_interval = nack_interval
        self.nack_retries = nack_retries
        self.counters = AssemblerCounters()
        self._held: dict[int, _Held] = {}
        self._next: int | None = None  # first sequence number not yet handed out or given up
        self._highest: int | None = None
        self._highest_ts: int | None = None
        self._gap_since: float | None = None
        self._after_loss = False
        self._nacks: dict[int, _Nack] = {}
        self._checked: tuple[int, int] | None = None  # (frame start, first sequence number not yet looked at)

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def waiting(self) -> bool:
        """Frames wait behind a gap: ``poll`` will have to give it up if it is not filled in time."""
        return self._gap_since is not None

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes, now: float) -> list[AssembledFrame]:
        """One received packet; returns the frames it completed, in order."""
        self.counters.packets += 1
        ext = unwrap(seq, self._highest, SEQ_MOD)
        ts = unwrap(timestamp, self._highest_ts, 1 << 32)
        if self._next is None:
            if not self.is_start(payload):
                self.counters.before_start += 1
                return []
            self._next = ext
        if ext < self._next:
            self.counters.late += 1
            self._nacks.pop(ext, None)
            return []
        if ext in self._held:
            self.counters.duplicates += 1
            return []
        if self._nacks.pop(ext, None) is not None:
            self.counters.recovered += 1
        self._held[ext] = _Held(ts, marker, payload, now)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if self._highest_ts is None or ts > self._highest_ts:
            self._highest_ts = ts
        frames = self._emit()
        if len(self._held) > self.max_packets:
            frames += self._give_up()
        self._note_gap(now)
        return frames + self.poll(now)

    def poll(self, now: float) -> list[AssembledFrame]:
        """Give up on a gap that waited ``max_wait``; returns the frames that were held behind it."""
        frames: list[AssembledFrame] = []
        while self._gap_since is not None and now - self._gap_since >= self.max_wait:
            frames += self._give_up()
            self._note_gap(now)
        return frames

    def missing(self) -> list[int]:
        """Extended sequence numbers in the current gap(s), oldest first."""
        if self._next is None or self._highest is None:
            return []
        return [seq for seq in range(self._next, self._highest) if seq not in self._held]

    def nack_due(self, now: float) -> list[int]:
        """Missing sequence numbers (16-bit) to NACK now: new ones and those whose last NACK went unanswered."""
        if self._next is None or self._highest is None:
            return []
        # Held packets all lie in [next, highest]: when those below the highest are all there, nothing is missing
        # (asked after every packet, so the common case does not build the list of what is missing).
        span = self._highest - self._next
        if span <= 0 or len(self._held) - (self._highest in self._held) >= span:
            return []
        due = []
        for seq in self.missing()[-256:]:
            state = self._nacks.get(seq)
            if state is None:
                self._nacks[seq] = _Nack(now, 1)
            elif state.retries < self.nack_retries and now - state.sent_at >= self.nack_interval:
                state.sent_at = now
                state.retries += 1
            else:
                continue
            due.append(seq % SEQ_MOD)
        self.counters.nacks += len(due)
        return due

    # -- internals --------------------------------------------------------------------------------------------

    def _emit(self) -> list[AssembledFrame]:
        frames = []
        while self._next is not None:
            frame = self._take_frame()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def _take_frame(self) -> AssembledFrame | None:
        assert self._next is not None
        start = self._next
        while (held := self._held.get(start)) is not None and not held.payload:
            del self._held[start]  # padding between frames
            start += 1
            self._next = start
        first = self._held.get(start)
        if first is None:
            return None
        # Where the last look at this frame stopped: the packets before it are held, of the frame's timestamp and
        # without a marker (a frame of n packets is looked at after each of them: n looks, not n²/2 steps).
        seq = self._checked[1] if self._checked is not None and self._checked[0] == start else start
        last = start
        while True:
            held = self._held.get(seq)
            if held is None:
                self._checked = (start, seq)
                return None  # incomplete: wait for the rest (or give up later)
            if held.timestamp != first.timestamp:
                last = seq - 1  # the timestamp changed: the frame ended without a marker
                break
            last = seq
            if held.marker or self.whole_packets:
                break
            seq += 1
        self._checked = None
        payloads = [packet.payload for s in range(start, last + 1) if (packet := self._held[s]).payload]
        arrival = self._held[last].arrival
        for done in range(start, last + 1):
            del self._held[done]
        self._next = last + 1
        self.counters.frames += 1
        after_loss, self._after_loss = self._after_loss, False
        return AssembledFrame(first.timestamp, tuple(payloads), start, last, arrival, after_loss)

    def _note_gap(self, now: float) -> None:
        """Start (or stop) the wait clock: a gap is a sequence number missing below the highest one held.

        A frame whose packets are still arriving in order is no gap: a large keyframe, paced by its sender, may
        take longer than ``max_wait`` to arrive whole.
        """
        if self._has_gap():
            if self._gap_since is None:
                self._gap_since = now
        else:
            self._gap_since = None

    def _has_gap(self) -> bool:
        if self._next is None or self._highest is None or not self._held:
            return False
        # Everything held lies in [next, highest]: a hole makes the count fall short.
        return len(self._held) < self._highest - self._next + 1

    def _give_up(self) -> list[AssembledFrame]:
        """Skip what is missing before the next packet that can start a frame; hand out what then completes."""
        assert self._next is not None
        self._checked = None
        resume = self._resume_point()
        if resume is None:
            # Nothing held can start a frame: drop everything held, resume at the next start that arrives.
            self.counters.lost += (self._highest or self._next) + 1 - self._next - len(self._held)
            self._held.clear()
            self._next = None
            self._nacks.clear()
            self._after_loss = True
            self._gap_since = None
            return []
        skipped = range(self._next, resume)
        self.counters.lost += sum(1 for seq in skipped if seq not in self._held)
        for seq in skipped:
            self._held.pop(seq, None)
            self._nacks.pop(seq, None)
        self._next = resume
        self._after_loss = True
        self._gap_since = None
        return self._emit()

    def _resume_point(self) -> int | None:
        """The first held packet after the head that starts a frame: its predecessor ended one, or is missing."""
        assert self._next is not None
        for seq in sorted(self._held):
            if seq <= self._next and self._next in self._held and seq == self._next:
                continue  # the stuck head frame itself
            held = self._held[seq]
            if not held.payload or not self.is_start(held.payload):
                continue
            before = self._held.get(seq - 1)
            if before is None or before.marker or before.timestamp != held.timestamp or self.whole_packets:
                return seq
        return None
