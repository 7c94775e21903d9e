"""Transport-wide congestion control feedback, the receive side (sans-IO: arrivals in, RTCP bytes out).

draft-holmer-rmcat-transport-wide-cc-extensions-01: the publisher numbers every packet it sends on the transport
(the header extension ``TRANSPORT_CC_URI``, whatever its SSRC); the receiver tells it, every 50-100 ms, which of
those numbers arrived and when.  From that the sender estimates the path itself (libwebrtc's GoogCC: delay trend
and loss), so the estimate is the browser's, not ours.  aiortc parses the extension (``transport_sequence_number``)
but has no feedback packet: ``TransportFeedback`` builds it.

The feedback (RTPFB, FMT 15, §3.1)::

    header (V=2, P, FMT=15, PT=205, length) | sender SSRC | media SSRC
    base sequence number (16) | packet status count (16) | reference time (24, × 64 ms) | feedback count (8)
    packet status chunks (16 bits each) | receive deltas (8 or 16 bits each, × 250 µs) | padding

What a sender needs from it, and what is easy to get wrong:

- the media SSRC must be one the sender sends: libwebrtc drops feedback naming another SSRC (``RTCPReceiver::
  HandleTransportFeedback`` checks it against its registered SSRCs), so it is the SSRC of the newest packet;
- times are one clock across packets: the reference time is that clock in 64 ms steps (24 bits, wrapping), each
  delta is the change from the previous received packet (the first one: from the reference time) in 250 µs units,
  taken from each arrival quantised on its own so that rounding never accumulates;
- a packet not received is reported as not received (status 00, no delta), never as received;
- the feedback count goes up by one per feedback packet (the sender detects lost feedback by it).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from struct import pack

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15
DELTA_US = 250  # one delta unit
REFERENCE_US = 64_000  # one reference time unit

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
MAX_RUN = 0x1FFF  # 13 bits of run length
MAX_RECEIVED_PER_PACKET = 200  # keeps a feedback packet well under an MTU (≤ 400 delta bytes + chunks)
HISTORY = 1 << 14  # arrivals kept behind the window's start, for packets that arrive late


def run_length_chunk(symbol: int, length: int) -> bytes:
    """§3.1.3: 0 | symbol (2 bits) | run length (13 bits)."""
    assert 0 < length <= MAX_RUN and symbol in (NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA)
    return pack("!H", (symbol << 13) | length)


def status_vector_chunk(symbols: list[int]) -> bytes:
    """§3.1.4: 1 | S | symbols — 14 one-bit symbols (S=0, no large delta among them) or 7 two-bit ones (S=1).

    Fewer symbols than the chunk holds are allowed at the end of a feedback (the packet status count says where
    it ends); the unused ones are zero."""
    if all(s != LARGE_DELTA for s in symbols) and len(symbols) <= 14:
        value = 0x8000
        for i, symbol in enumerate(symbols):
            value |= symbol << (13 - i)
        return pack("!H", value)
    assert len(symbols) <= 7
    value = 0xC000
    for i, symbol in enumerate(symbols):
        value |= symbol << (12 - 2 * i)
    return pack("!H", value)


def encode_chunks(symbols: list[int]) -> bytes:
    """Status chunks for ``symbols``, greedily: long runs as run-length chunks, mixed stretches as vectors."""
    out = bytearray()
    i, n = 0, len(symbols)
    while i < n:
        run = 1
        while i + run < n and symbols[i + run] == symbols[i] and run < MAX_RUN:
            run += 1
        if run >= 14 or i + run == n:
            out += run_length_chunk(symbols[i], run)
            i += run
            continue
        one_bit = symbols[i : i + 14]
        if LARGE_DELTA not in one_bit:
            out += status_vector_chunk(one_bit)
            i += len(one_bit)
        elif run >= 7:
            out += run_length_chunk(symbols[i], run)
            i += run
        else:
            two_bit = symbols[i : i + 7]
            out += status_vector_chunk(two_bit)
            i += len(two_bit)
    return bytes(out)


def feedback_packet(
    sender_ssrc: int,
    media_ssrc: int,
    base_sequence: int,
    reference_time: int,
    feedback_count: int,
    arrivals: list[int | None],
) -> bytes:
    """One feedback packet: ``arrivals[i]`` is when ``base_sequence + i`` arrived (µs, one clock), None if not.

    ``reference_time`` is in 64 ms units; the first received arrival must not be before it (the first delta is
    counted from it).  Deltas that do not fit 16 signed bits are the caller's to avoid (``TransportFeedback``
    starts a new packet there)."""
    symbols: list[int] = []
    deltas = bytearray()
    previous = reference_time * (REFERENCE_US // DELTA_US)  # in delta units
    for arrival in arrivals:
        if arrival is None:
            symbols.append(NOT_RECEIVED)
            continue
        ticks = arrival // DELTA_US
        delta = ticks - previous
        previous = ticks
        if 0 <= delta <= 0xFF:
            symbols.append(SMALL_DELTA)
            deltas.append(delta)
        else:
            symbols.append(LARGE_DELTA)
            deltas += pack("!h", delta)
    payload = pack(
        "!LLHHL",
        sender_ssrc,
        media_ssrc,
        base_sequence & 0xFFFF,
        len(arrivals),
        ((reference_time & 0xFFFFFF) << 8) | (feedback_count & 0xFF),
    )
    payload += encode_chunks(symbols) + deltas
    padding = -len(payload) % 4
    header = 0x80 | FMT_TRANSPORT_CC
    if padding:  # as libwebrtc writes it: the P bit, zeros, and the padding's length in its last byte
        header |= 0x20
        payload += bytes(padding - 1) + bytes([padding])
    return pack("!BBH", header, RTCP_RTPFB, len(payload) // 4) + payload


@dataclass
class TransportFeedbackCounters:
    received: int = 0
    duplicates: int = 0
    too_old: int = 0  # arrived after feedback had moved HISTORY past it
    packets: int = 0  # feedback packets built


class TransportFeedback:
    """Arrivals of transport-wide sequence numbers in, feedback packets out.

    ``on_packet(sequence, arrival_us, ssrc)`` for every packet carrying the extension; ``feedback(sender_ssrc)``
    every 50-100 ms returns the packets reporting everything from the first sequence number not yet reported to
    the highest received (empty when nothing arrived since).  A packet arriving after its neighbours were reported
    moves the window back to it, so it is reported too (the sender tolerates a number reported twice)."""

    def __init__(self) -> None:
        self.arrivals: dict[int, int] = {}  # unwrapped sequence number → arrival (µs)
        self.highest: int | None = None
        self.window_start: int | None = None  # the first number the next feedback reports
        self._oldest: int | None = None  # no arrival is kept below this number
        self.media_ssrc = 0
        self.feedback_count = 0
        self.counters = TransportFeedbackCounters()

    def on_packet(self, sequence: int, arrival_us: int, ssrc: int) -> None:
        extended = self._unwrap(sequence)
        if extended in self.arrivals:
            self.counters.duplicates += 1
            return
        if self.highest is not None and extended < self.highest - HISTORY:
            self.counters.too_old += 1
            return
        self.counters.received += 1
        self.arrivals[extended] = arrival_us
        self.media_ssrc = ssrc
        if self.highest is None or extended > self.highest:
            self.highest = extended
        if self.window_start is None or extended < self.window_start:
            self.window_start = extended
        if self._oldest is None or extended < self._oldest:
            self._oldest = extended

    def feedback(self, sender_ssrc: int) -> list[bytes]:
        if self.highest is None or self.window_start is None or self.window_start > self.highest:
            return []
        packets = []
        for base, arrivals in self._batches(self.window_start, self.highest):
            first = next(a for a in arrivals if a is not None)
            packets.append(
                feedback_packet(
                    sender_ssrc, self.media_ssrc, base, first // REFERENCE_US, self.feedback_count, arrivals
                )
            )
            self.feedback_count = (self.feedback_count + 1) & 0xFF
        self.counters.packets += len(packets)
        self.window_start = self.highest + 1
        if self._oldest is not None:  # forget what fell HISTORY behind, number by number (amortised O(1))
            while self._oldest < self.highest - HISTORY:
                self.arrivals.pop(self._oldest, None)
                self._oldest += 1
        return packets

    def _batches(self, start: int, end: int) -> Iterator[tuple[int, list[int | None]]]:
        """Stretches of [start, end] (``end`` received) for one packet each: at most MAX_RECEIVED_PER_PACKET
        received numbers, and only deltas that fit 16 signed bits.  Losses before a cut open the next stretch
        (a feedback may start with packets not received; the reference time is its first received one's)."""
        base, arrivals = start, list[int | None]()
        received, last_received = 0, -1
        previous: int | None = None
        for sequence in range(start, end + 1):
            arrival = self.arrivals.get(sequence)
            if arrival is not None:
                ticks = arrival // DELTA_US
                if previous is not None and (
                    received >= MAX_RECEIVED_PER_PACKET or not -0x8000 <= ticks - previous <= 0x7FFF
                ):
                    cut = last_received + 1
                    yield base, arrivals[:cut]
                    base, arrivals, received = base + cut, arrivals[cut:], 0
                previous, last_received = ticks, len(arrivals)
                received += 1
            arrivals.append(arrival)
        yield base, arrivals

    def _unwrap(self, sequence: int) -> int:
        if self.highest is None:
            return sequence
        delta = (sequence - self.highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self.highest + delta
