"""SCTE-35 splice_info_sections: the parser on the standard's own sample cue and on sections built field by field
(tests/harness/scte35_ts.py), what it refuses, and the schedule that holds a splice until the media reaches it."""

import base64

import pytest

from pyingress.ingest.pull.scte35 import (
    PTS_MODULUS,
    SPLICE_INSERT,
    TIME_SIGNAL,
    Scte35Error,
    SpliceCue,
    SpliceInsert,
    SpliceSchedule,
    crc32_mpeg2,
    parse_splice_info,
    splice_media_time,
)
from tests.harness.scte35_ts import splice_info_section, splice_insert, time_signal

# The splice_insert SCTE 35 (2019, §14.2) prints as its example: event 0x4800008F out of network at PTS
# 0x07369C02E with a 60.293567 s break that returns by itself.  Not made by us: its CRC checking proves the bytes.
SAMPLE_CUE = base64.b64decode("/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo=")


def test_crc_is_crc32_mpeg2() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogued check value
    assert crc32_mpeg2(SAMPLE_CUE) == 0  # a section with its CRC checks to zero


def test_the_standards_sample_cue() -> None:
    info = parse_splice_info(SAMPLE_CUE)
    assert info.command_type == SPLICE_INSERT and not info.encrypted and info.tier == 0xFFF
    assert info.insert == SpliceInsert(
        event_id=0x4800008F,
        out_of_network=True,
        splice_pts=0x07369C02E,
        duration=0x0052CCF5,
        auto_return=True,
    )
    assert info.insert.attribute_value == "1207959695"


def test_a_return_clears_the_attribute_and_an_immediate_splice_has_no_time() -> None:
    back = parse_splice_info(splice_insert(7, out_of_network=False)).insert
    assert back == SpliceInsert(7, out_of_network=False, immediate=True)
    assert back.attribute_value == ""
    out = parse_splice_info(splice_insert(7, out_of_network=True)).insert
    assert out is not None and out.immediate and out.splice_pts is None and out.attribute_value == "7"


def test_pts_adjustment_is_added_modulo_33_bits() -> None:
    section = splice_insert(9, out_of_network=True, pts=PTS_MODULUS - 100, pts_adjustment=300)
    insert = parse_splice_info(section).insert
    assert insert is not None and insert.splice_pts == 200 and not insert.immediate


def test_component_splices_take_the_first_components_time() -> None:
    insert = parse_splice_info(splice_insert(3, out_of_network=True, pts=90_000, components=(1, 2))).insert
    assert insert is not None and insert.splice_pts == 90_000
    immediate = parse_splice_info(splice_insert(3, out_of_network=True, components=(1, 2))).insert
    assert immediate is not None and immediate.immediate and immediate.splice_pts is None


def test_a_cancel_carries_no_flags_and_clears() -> None:
    insert = parse_splice_info(splice_insert(5, out_of_network=True, cancel=True)).insert
    assert insert == SpliceInsert(5, cancelled=True)
    assert insert.attribute_value == ""


def test_other_commands_are_recognised_and_carry_no_insert() -> None:
    info = parse_splice_info(time_signal(90_000))
    assert info.command_type == TIME_SIGNAL and info.insert is None
    assert parse_splice_info(splice_info_section(0x00, b"")).insert is None  # splice_null


def test_an_encrypted_section_is_not_read_into() -> None:
    clear = bytearray(splice_insert(1, out_of_network=True)[:-4])
    clear[4] |= 0x80  # encrypted_packet
    section = bytes(clear) + crc32_mpeg2(bytes(clear)).to_bytes(4, "big")
    info = parse_splice_info(section)
    assert info.encrypted and info.insert is None


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (b"", "shorter"),
        (b"\x00" + SAMPLE_CUE[1:], "table id"),
        (SAMPLE_CUE[:-1], "does not fit"),
        (SAMPLE_CUE[:-1] + bytes([SAMPLE_CUE[-1] ^ 1]), "CRC"),
        (SAMPLE_CUE[:1] + bytes([SAMPLE_CUE[1] | 0x80]) + SAMPLE_CUE[2:], "syntax"),
    ],
)
def test_malformed_sections_are_refused_in_words(section: bytes, words: str) -> None:
    with pytest.raises(Scte35Error, match=words):
        parse_splice_info(section)


def test_a_command_longer_than_its_section_is_refused() -> None:
    # splice_insert announcing a duration it does not carry: the fields run into the CRC.
    command = bytes.fromhex("00000001") + b"\x7f" + bytes([0b1110_1111])  # out, program, duration, not immediate
    section = splice_info_section(SPLICE_INSERT, command + bytes.fromhex("fe00000000"))
    with pytest.raises(Scte35Error):
        parse_splice_info(section)


def test_splice_media_time_reads_the_33_bit_clock_across_its_wrap() -> None:
    assert splice_media_time(90_000 * 12, 10.0) == pytest.approx(12.0)
    assert splice_media_time(90_000 * 9, 10.0) is None  # behind: already past
    # FFmpeg's unwrapped clock past 2^33 ticks; the splice time wrapped to a small number 2 s later.
    now = (PTS_MODULUS - 90_000) / 90_000
    assert splice_media_time(90_000, now) == pytest.approx(now + 2.0)


def _cue(event_id: int, out: bool, pts: int | None = None, arrived: float | None = 1.0) -> SpliceCue:
    insert = parse_splice_info(splice_insert(event_id, out_of_network=out, pts=pts)).insert
    assert insert is not None
    return SpliceCue(insert, arrived)


def test_the_schedule_holds_a_splice_until_its_time_is_reached() -> None:
    schedule = SpliceSchedule()
    assert schedule.add(_cue(1, True, pts=90_000 * 3), now_media_time=1.5) == []
    assert schedule.add(_cue(1, False, pts=90_000 * 5), now_media_time=1.5) == []
    assert schedule.reached(2.99) == []
    assert [i.out_of_network for i in schedule.reached(3.0)] == [True]
    assert [i.out_of_network for i in schedule.reached(6.0)] == [False]
    assert schedule.pending == []


def test_immediate_past_and_timeless_splices_take_effect_at_once() -> None:
    schedule = SpliceSchedule()
    assert len(schedule.add(_cue(1, True), now_media_time=None)) == 1  # immediate
    assert len(schedule.add(_cue(2, True, pts=90_000), now_media_time=4.0)) == 1  # 1 s, media is at 4 s
    assert len(schedule.add(_cue(3, True, pts=90_000 * 2, arrived=None), now_media_time=None)) == 1
    assert schedule.pending == []


def test_a_cancel_drops_its_pending_splice() -> None:
    schedule = SpliceSchedule()
    schedule.add(_cue(1, True, pts=90_000 * 3), now_media_time=1.0)
    schedule.add(_cue(2, True, pts=90_000 * 4), now_media_time=1.0)
    cancel = parse_splice_info(splice_insert(1, out_of_network=True, cancel=True)).insert
    assert cancel is not None
    assert schedule.add(SpliceCue(cancel, 1.2), now_media_time=1.2) == [cancel]
    assert [i.event_id for i in schedule.reached(10.0)] == [2]


def test_the_schedule_is_bounded() -> None:
    schedule = SpliceSchedule()
    for n in range(200):
        schedule.add(_cue(n, True, pts=90_000 * (10 + n)), now_media_time=1.0)
    assert len(schedule.pending) == SpliceSchedule.MAX_PENDING
    assert [i.event_id for i in schedule.reached(11.0)] == [0, 1]
