"""Fuzz the video PES end finder (fuzz/ts_pes_end.py) with hypothesis: TS-shaped packets of a few PIDs, and bytes;
its seed corpus (FFmpeg's own muxing) replayed as it is and cut at random."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.ts_pes_end import check

SEEDS = sorted((Path(__file__).with_name("corpus") / "pes_end").iterdir())


@st.composite
def _packet(draw: st.DrawFn) -> bytes:
    """A TS packet of PID 0x100 or 0x101, sometimes a video PES start, with or without an adaptation field."""
    pid = draw(st.sampled_from([0x100, 0x101]))
    start = draw(st.booleans())
    header = bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF])
    body = b""
    if start:
        stream_id, length = draw(st.sampled_from([0xE0, 0xC0])), draw(st.sampled_from([b"\0\0", b"\1\0"]))
        body = b"\x00\x00\x01" + bytes([stream_id]) + length
    stuffing = draw(st.integers(0, 184 - len(body)))
    control = draw(st.sampled_from([1, 3, 2])) if stuffing == 0 else 3
    cc = draw(st.integers(0, 15))
    if control & 2:
        af_length = max(stuffing - 1, 0) if stuffing else draw(st.integers(0, 183 - len(body)))
        flags = draw(st.sampled_from([0x00, 0x10, 0x40]))
        # After the flags: a PCR's bytes when flagged, then stuffing (a PES's last packet) or anything.
        filler = draw(st.sampled_from([b"\xff" * 188, bytes(188)]) | st.binary(min_size=188, max_size=188))
        fields = (bytes([flags]) + (bytes(6) if flags & 0x10 else b"") + filler)[:af_length]
        adaptation = bytes([af_length]) + fields
    else:
        adaptation = b""
    packet = header + bytes([control << 4 | cc]) + adaptation + body
    return (packet + draw(st.binary(min_size=188, max_size=188)))[:188]


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 255), st.lists(_packet(), max_size=40))
def test_ts_shaped_streams(cut: int, packets: list[bytes]) -> None:
    check(bytes([cut]) + b"".join(packets))


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes(data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda path: path.name)
def test_seed_corpus(seed: Path) -> None:
    check(seed.read_bytes())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.integers(0, 255), st.integers(0, 20_000), st.binary(max_size=8))
def test_seeds_cut_and_mangled(seed: Path, cut: int, at: int, junk: bytes) -> None:
    data = bytearray(seed.read_bytes())
    data[0] = cut
    position = 1 + at % (len(data) - 1)
    data[position : position + len(junk)] = junk  # a few bytes overwritten: a header, a length, a stuffing byte
    check(bytes(data))
