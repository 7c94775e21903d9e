"""Fuzz target for the video PES end finder (pyingress/ingest/srt/pes_end.py): whatever bytes an SRT publisher
sends, in whatever pieces, every byte comes out exactly once, each PID's packets keep their order, and the only
change is a zero PES length written in a PES's first packet.

Bounded runs in CI: tests/ingest/srt/test_pes_end_fuzz.py (hypothesis).  Long run:
    pip install atheris && python fuzz/ts_pes_end.py -max_total_time=3600
"""

import sys

from pyingress.ingest.srt.pes_end import TS_PACKET, PesEnds


def _by_pid(data: bytes) -> dict[int, list[bytes]]:
    packets: dict[int, list[bytes]] = {}
    for at in range(0, len(data) - len(data) % TS_PACKET, TS_PACKET):
        packet = data[at : at + TS_PACKET]
        packets.setdefault((packet[1] & 0x1F) << 8 | packet[2], []).append(packet)
    return packets


def _same_but_length(before: bytes, after: bytes) -> bool:
    changed = [at for at in range(TS_PACKET) if before[at] != after[at]]
    if not changed:
        return True
    # A PES start whose zero length field (two bytes) was written.
    return bool(before[1] & 0x40) and changed[-1] - changed[0] <= 1 and all(before[at] == 0 for at in changed)


def check(data: bytes) -> None:
    # The first byte picks how the rest is cut into messages: SRT messages of 1 to 7 TS packets, or anything.
    cut = (data[0] % 7 + 1) * TS_PACKET if data else TS_PACKET
    stream = data[1:]
    if data and data[0] >= 0x80:
        cut = data[0] % 97 + 1  # unaligned pieces: the finder must step aside, not lose bytes
    ends = PesEnds()
    out = b"".join(ends.feed(stream[at : at + cut]) for at in range(0, len(stream), cut)) + ends.flush()
    assert len(out) == len(stream)
    before, after = _by_pid(stream), _by_pid(out)
    assert before.keys() == after.keys()
    for pid, packets in before.items():
        assert len(packets) == len(after[pid])
        assert all(_same_but_length(a, b) for a, b in zip(packets, after[pid], strict=True))


if __name__ == "__main__":
    import atheris  # only for long runs

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()
