"""Transport-wide congestion control feedback (sans-IO): chunks and whole packets against known byte layouts
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1.3/§3.1.4, and a feedback packet as pion/rtcp's tests carry
it), then ``TransportFeedback`` read back by a decoder of the draft's format: losses, reordering, wrap-around,
the feedback count, the media SSRC, times that do not drift."""

import random
from struct import unpack

from pyingress.webrtc.transport_cc import (
    LARGE_DELTA,
    NOT_RECEIVED,
    SMALL_DELTA,
    TransportFeedback,
    encode_chunks,
    feedback_packet,
    run_length_chunk,
    status_vector_chunk,
)


def test_run_length_chunks_as_the_draft_draws_them() -> None:
    assert run_length_chunk(NOT_RECEIVED, 221) == bytes([0x00, 0xDD])  # §3.1.3 example 1
    assert run_length_chunk(SMALL_DELTA, 24) == bytes([0x20, 0x18])
    assert run_length_chunk(LARGE_DELTA, 2) == bytes([0x40, 0x02])


def test_status_vector_chunks_as_the_draft_draws_them() -> None:
    # §3.1.4 example 1: one-bit symbols, 14 of them.
    assert status_vector_chunk([0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]) == bytes([0x9F, 0x1C])
    # Two-bit symbols as soon as one delta is large: received small, received large, five not received.
    assert status_vector_chunk([1, 2, 0, 0, 0, 0, 0]) == bytes([0xD8, 0x00])
    # A vector at the end of a feedback may hold fewer symbols than it could.
    assert status_vector_chunk([1, 0, 1]) == bytes([0xA8, 0x00])


def test_chunks_choose_runs_for_long_stretches_and_vectors_for_mixed_ones() -> None:
    assert encode_chunks([SMALL_DELTA] * 20) == run_length_chunk(SMALL_DELTA, 20)
    assert encode_chunks([NOT_RECEIVED] * 9000) == run_length_chunk(NOT_RECEIVED, 8191) + run_length_chunk(
        NOT_RECEIVED, 809
    )
    mixed = [1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert encode_chunks(mixed) == status_vector_chunk(mixed)
    with_large = [1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert decode_chunks(encode_chunks(with_large), len(with_large)) == with_large


def test_a_feedback_packet_byte_for_byte() -> None:
    """Seven packets received from sequence number 4, reference time 1074030 × 64 ms, the first 19 ms after it;
    the packet pion/rtcp's tests carry as "example4" (padding with the P bit, as libwebrtc writes it)."""
    reference = 1074030
    arrivals: list[int | None] = []
    t = reference * 64_000
    for delta_us in (19_000, 9_000, 9_000, 4_000, 3_000, 3_000, 4_000):
        t += delta_us
        arrivals.append(t)
    packet = feedback_packet(0xFA17FA17, 423483579, 4, reference, 1, arrivals)
    assert packet == bytes.fromhex("afcd0007 fa17fa17 193dd8bb 00040007 10636e01 2007 4c2424100c0c10 000003")


def test_a_feedback_with_losses_reports_them_not_received_and_large_deltas_signed() -> None:
    reference = 1000
    base = reference * 64_000
    arrivals: list[int | None] = [base + 1_000, None, None, base + 1_000 + 70_000, base + 1_000 + 69_000]
    packet = feedback_packet(1, 2, 65534, reference, 255, arrivals)
    decoded = decode(packet)
    assert decoded.base == 65534 and decoded.count == 5 and decoded.feedback_count == 255
    assert decoded.symbols == [SMALL_DELTA, NOT_RECEIVED, NOT_RECEIVED, LARGE_DELTA, LARGE_DELTA]
    assert decoded.deltas == [4, 280, -4]
    assert decoded.arrivals_us() == arrivals


def test_transport_feedback_reports_every_number_once_in_order_with_its_arrival() -> None:
    feedback = TransportFeedback()
    rng = random.Random(3)
    clock = 5_000_000_123
    sent: dict[int, int | None] = {}
    packets: list[bytes] = []
    sequence = 65000  # wraps during the run
    for _ in range(60):  # 60 feedback intervals of 50 ms
        for _ in range(rng.randint(5, 40)):
            clock += rng.randint(50, 3000)
            lost = rng.random() < 0.05
            sent[sequence & 0xFFFF] = None if lost else clock
            if not lost:
                feedback.on_packet(sequence & 0xFFFF, clock, ssrc=0xABCD)
            sequence += 1
        packets += feedback.feedback(sender_ssrc=7)
    assert feedback.feedback(7) == []  # nothing new: nothing to send
    reported: dict[int, int | None] = {}
    counts = []
    for packet in packets:
        decoded = decode(packet)
        assert decoded.sender_ssrc == 7 and decoded.media_ssrc == 0xABCD
        counts.append(decoded.feedback_count)
        for offset, arrival in enumerate(decoded.arrivals_us()):
            reported[(decoded.base + offset) & 0xFFFF] = arrival
    assert counts == [i & 0xFF for i in range(len(packets))]
    # The last numbers sent may be lost and not reported yet (nothing received after them); all others are.
    for number, arrival in sent.items():
        if number not in reported:
            assert arrival is None
            continue
        if arrival is None:
            assert reported[number] is None, number
        else:
            # Quantised to 250 µs from the absolute arrival: never more than one unit off, never drifting.
            got = reported[number]
            assert got is not None and arrival - 250 < got <= arrival, (number, arrival, got)


def test_a_late_packet_is_reported_after_its_neighbours_were() -> None:
    feedback = TransportFeedback()
    feedback.on_packet(10, 1_000_000, 1)
    feedback.on_packet(12, 1_002_000, 1)
    first = decode(feedback.feedback(9)[0])
    assert first.base == 10 and first.symbols == [SMALL_DELTA, NOT_RECEIVED, SMALL_DELTA]
    feedback.on_packet(11, 1_010_000, 1)  # reordered: after 12 was reported
    second = decode(feedback.feedback(9)[0])
    assert second.base == 11 and second.count == 2
    assert second.arrivals_us() == [1_010_000, 1_002_000]  # 12 again, with a negative (large) delta


def test_a_long_silence_starts_a_new_packet_rather_than_overflowing_a_delta() -> None:
    feedback = TransportFeedback()
    feedback.on_packet(1, 1_000_000, 1)
    feedback.on_packet(2, 1_000_000 + 9_000_000, 1)  # 9 s later: beyond 16 bits of 250 µs
    packets = [decode(p) for p in feedback.feedback(9)]
    assert [(p.base, p.count) for p in packets] == [(1, 1), (2, 1)]
    assert packets[1].arrivals_us() == [10_000_000]


def test_many_packets_are_split_to_stay_under_an_mtu() -> None:
    feedback = TransportFeedback()
    for n in range(1000):
        feedback.on_packet(n, 1_000_000 + n * 100, 1)
    packets = feedback.feedback(9)
    assert len(packets) == 5 and all(len(p) < 1200 for p in packets)
    decoded = [decode(p) for p in packets]
    assert [p.base for p in decoded] == [0, 200, 400, 600, 800]
    assert sum(p.count for p in decoded) == 1000


# -- a decoder of the draft's format (what a sender does with the bytes) -------------------------------------------


class Decoded:
    def __init__(self, data: bytes) -> None:
        first, packet_type, length = unpack("!BBH", data[:4])
        assert first >> 6 == 2 and first & 0x1F == 15 and packet_type == 205
        assert len(data) == 4 + 4 * length
        if first & 0x20:
            data = data[: len(data) - data[-1]]
        self.sender_ssrc, self.media_ssrc, self.base, self.count, word = unpack("!LLHHL", data[4:20])
        self.reference, self.feedback_count = word >> 8, word & 0xFF
        self.symbols = decode_chunks(data[20:], self.count)
        position = 20 + 2 * self._chunk_count(data[20:])
        self.deltas: list[int] = []
        for symbol in self.symbols:
            if symbol == SMALL_DELTA:
                self.deltas.append(data[position])
                position += 1
            elif symbol == LARGE_DELTA:
                self.deltas.append(unpack("!h", data[position : position + 2])[0])
                position += 2
        assert position <= len(data)

    def _chunk_count(self, data: bytes) -> int:
        seen, chunks = 0, 0
        while seen < self.count:
            (chunk,) = unpack("!H", data[2 * chunks : 2 * chunks + 2])
            chunks += 1
            if not chunk & 0x8000:
                seen += chunk & 0x1FFF
            else:
                seen += 7 if chunk & 0x4000 else 14
        return chunks

    def arrivals_us(self) -> list[int | None]:
        ticks = self.reference * 256
        deltas = iter(self.deltas)
        out: list[int | None] = []
        for symbol in self.symbols:
            if symbol == NOT_RECEIVED:
                out.append(None)
            else:
                ticks += next(deltas)
                out.append(ticks * 250)
        return out


def decode(data: bytes) -> Decoded:
    return Decoded(data)


def decode_chunks(data: bytes, count: int) -> list[int]:
    symbols: list[int] = []
    position = 0
    while len(symbols) < count:
        (chunk,) = unpack("!H", data[position : position + 2])
        position += 2
        if not chunk & 0x8000:
            symbols += [(chunk >> 13) & 0x3] * (chunk & 0x1FFF)
        elif chunk & 0x4000:
            symbols += [(chunk >> (12 - 2 * i)) & 0x3 for i in range(7)]
        else:
            symbols += [(chunk >> (13 - i)) & 0x1 for i in range(14)]
    return symbols[:count]


def test_arrivals_are_forgotten_once_far_behind() -> None:
    feedback = TransportFeedback()
    for n in range(40_000):
        feedback.on_packet(n & 0xFFFF, 1_000_000 + n * 100, 1)
        if n % 50 == 49:
            feedback.feedback(9)
    assert len(feedback.arrivals) <= (1 << 14) + 50
    feedback.on_packet(19_999, 5_000_000_000, 1)  # 20,000 behind the highest: long forgotten, not reported
    assert feedback.counters.too_old == 1 and feedback.window_start == 40_000
