"""SCTE-35 cues for tests: splice_info_sections built field by field per ANSI/SCTE 35 (§9.6, §9.7.3, §9.8), and
a small MPEG-TS writer that adds them, on a PID of their own, to a transport stream Debian ffmpeg made.

ffmpeg cannot write SCTE-35, so the sections are made here and checked against the sample cue SCTE 35 documents
itself (tests/ingest/pull/test_scte35.py); the CRC is the one MPEG-TS uses for every section.

``add_cues(source, dest, cues)`` rewrites the PMT — the SCTE-35 stream (stream type 0x86) and the ``CUEI``
registration descriptor the standard asks for (§8.1), which FFmpeg's demuxer looks for — and puts each section in a
TS packet of its own just before the first video PES whose PTS reaches the cue's time.  ``video_start_pts`` is the
stream's first video PTS, to write splice times against.
"""

from dataclasses import dataclass
from pathlib import Path

from pyingress.ingest.pull.scte35 import PTS_CLOCK, PTS_MODULUS, SPLICE_INSERT, TIME_SIGNAL, crc32_mpeg2

TS_PACKET = 188
SCTE35_PID = 0x1F0
SCTE35_STREAM_TYPE = 0x86
_CUEI = bytes([0x05, 4]) + b"CUEI"  # registration_descriptor, format_identifier "CUEI"


class _BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def put(self, count: int, value: int) -> "_BitWriter":
        self.value = (self.value << count) | (value & ((1 << count) - 1))
        self.bits += count
        return self

    def bytes(self) -> bytes:
        assert self.bits % 8 == 0, self.bits
        return self.value.to_bytes(self.bits // 8, "big")


def _splice_time(pts: int | None) -> _BitWriter:
    if pts is None:
        return _BitWriter().put(1, 0).put(7, 0x7F)
    return _BitWriter().put(1, 1).put(6, 0x3F).put(33, pts % PTS_MODULUS)


def splice_info_section(command_type: int, command: bytes, pts_adjustment: int = 0) -> bytes:
    """A clear (not encrypted) splice_info_section around ``command``, no descriptors, with its CRC_32."""
    body = _BitWriter()
    body.put(8, 0)  # protocol_version
    body.put(1, 0).put(6, 0).put(33, pts_adjustment)  # encrypted_packet, encryption_algorithm, pts_adjustment
    body.put(8, 0).put(12, 0xFFF)  # cw_index, tier
    body.put(12, len(command)).put(8, command_type)
    rest = body.bytes() + command + b"\x00\x00"  # descriptor_loop_length 0
    length = len(rest) + 4
    header = bytes([0xFC, 0x30 | (length >> 8), length & 0xFF])  # syntax 0, private 0, sap_type 3
    section = header + rest
    return section + crc32_mpeg2(section).to_bytes(4, "big")


def splice_insert(
    event_id: int,
    *,
    out_of_network: bool,
    pts: int | None = None,
    duration: int | None = None,
    auto_return: bool = False,
    cancel: bool = False,
    pts_adjustment: int = 0,
    components: tuple[int, ...] = (),
) -> bytes:
    """A splice_insert section: immediate when ``pts`` is None, else at ``pts`` (90 kHz, before adjustment);
    a program splice unless ``components`` names component tags (each spliced at the same time)."""
    command = _BitWriter().put(32, event_id).put(1, int(cancel)).put(7, 0x7F)
    if not cancel:
        immediate = pts is None
        command.put(1, int(out_of_network)).put(1, int(not components)).put(1, int(duration is not None))
        command.put(1, int(immediate)).put(4, 0xF)
        data = command.bytes()
        if components:
            data += bytes([len(components)])
            for tag in components:
                data += bytes([tag]) + (b"" if immediate else _splice_time(pts).bytes())
        elif not immediate:
            data += _splice_time(pts).bytes()
        if duration is not None:
            data += _BitWriter().put(1, int(auto_return)).put(6, 0x3F).put(33, duration).bytes()
        data += bytes([0x00, 0x01, 0x00, 0x00])  # unique_program_id 1, avail_num 0, avails_expected 0
    else:
        data = command.bytes()
    return splice_info_section(SPLICE_INSERT, data, pts_adjustment)


def time_signal(pts: int | None) -> bytes:
    """A time_signal section (what segmentation descriptors ride on; the reference ignores it)."""
    return splice_info_section(TIME_SIGNAL, _splice_time(pts).bytes())


@dataclass(frozen=True)
class Cue:
    at: float  # seconds after the first video PTS: the section goes in before the video PES that reaches it
    section: bytes


def _packets(data: bytes) -> list[bytearray]:
    assert len(data) % TS_PACKET == 0 and data[0] == 0x47, "not a 188-byte transport stream"
    return [bytearray(data[i : i + TS_PACKET]) for i in range(0, len(data), TS_PACKET)]


def _pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def _payload_start(packet: bytes) -> int:
    control = (packet[3] >> 4) & 0x3
    return 5 + packet[4] if control == 0x3 else 4


def _pes_pts(packet: bytes) -> int | None:
    if not packet[1] & 0x40:
        return None
    p = _payload_start(packet)
    if packet[p : p + 3] != b"\x00\x00\x01" or not packet[p + 7] & 0x80:
        return None
    b = packet[p + 9 : p + 14]
    return ((b[0] >> 1) & 0x7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _section_packet(pid: int, section: bytes, counter: int) -> bytes:
    assert len(section) <= TS_PACKET - 5, "one section per packet here"
    header = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10 | (counter & 0xF), 0x00])  # PUSI, pointer 0
    return (header + section).ljust(TS_PACKET, b"\xff")


def _with_scte35(pmt_section: bytes) -> bytes:
    """The PMT section with the CUEI descriptor in its program info and a SCTE-35 stream added, CRC redone."""
    length = ((pmt_section[1] & 0x0F) << 8) | pmt_section[2]
    body = pmt_section[3 : 3 + length - 4]
    info_length = ((body[7] & 0x0F) << 8) | body[8]
    program_info = body[9 : 9 + info_length] + _CUEI
    streams = body[9 + info_length :]
    stream = bytes([SCTE35_STREAM_TYPE, 0xE0 | (SCTE35_PID >> 8), SCTE35_PID & 0xFF, 0xF0, 0x00])
    new_body = body[:7] + bytes([0xF0 | (len(program_info) >> 8), len(program_info) & 0xFF])
    new_body += program_info + streams + stream
    new_length = len(new_body) + 4
    section = bytes([pmt_section[0], (pmt_section[1] & 0xF0) | (new_length >> 8), new_length & 0xFF]) + new_body
    return section + crc32_mpeg2(section).to_bytes(4, "big")


def _pmt_pid(packets: list[bytearray]) -> int:
    for packet in packets:
        if _pid(packet) == 0 and packet[1] & 0x40:
            p = _payload_start(packet)
            section = packet[p + 1 + packet[p] :]
            return ((section[10] & 0x1F) << 8) | section[11]  # the first program's PMT
    raise ValueError("no PAT")


def _video_pid(pmt_section: bytes) -> int:
    length = ((pmt_section[1] & 0x0F) << 8) | pmt_section[2]
    info_length = ((pmt_section[10] & 0x0F) << 8) | pmt_section[11]
    at, end = 12 + info_length, 3 + length - 4
    while at < end:
        stream_type, pid = pmt_section[at], ((pmt_section[at + 1] & 0x1F) << 8) | pmt_section[at + 2]
        if stream_type in (0x1B, 0x24, 0x02):  # H.264, HEVC, MPEG-2 video
            return pid
        at += 5 + (((pmt_section[at + 3] & 0x0F) << 8) | pmt_section[at + 4])
    raise ValueError("no video stream in the PMT")


def video_start_pts(path: Path) -> int:
    """The first video PTS of a transport stream (90 kHz)."""
    packets = _packets(path.read_bytes())
    pmt_pid = _pmt_pid(packets)
    video_pid = None
    for packet in packets:
        if _pid(packet) == pmt_pid and packet[1] & 0x40 and video_pid is None:
            p = _payload_start(packet)
            video_pid = _video_pid(bytes(packet[p + 1 + packet[p] :]))
        elif video_pid is not None and _pid(packet) == video_pid and (pts := _pes_pts(packet)) is not None:
            return pts
    raise ValueError("no video PTS")


def add_cues(source: Path, dest: Path, cues: list[Cue]) -> Path:
    """``source`` (a single-program TS with video, each PMT in one packet) with ``cues`` added on SCTE35_PID."""
    packets = _packets(source.read_bytes())
    pmt_pid = _pmt_pid(packets)
    start = video_start_pts(source)
    pending = sorted(cues, key=lambda cue: cue.at)
    counter = 0
    video_pid = None
    out = bytearray()
    for packet in packets:
        pid = _pid(packet)
        if pid == pmt_pid and packet[1] & 0x40:
            p = _payload_start(packet)
            pointer = packet[p]
            pmt = bytes(packet[p + 1 + pointer :])
            video_pid = _video_pid(pmt)
            packet[p + 1 + pointer :] = _with_scte35(pmt).ljust(TS_PACKET - p - 1 - pointer, b"\xff")
            assert len(packet) == TS_PACKET, "the PMT no longer fits one packet"
        elif pid == video_pid and pending and (pts := _pes_pts(packet)) is not None:
            while pending and (pts - start) % PTS_MODULUS >= round(pending[0].at * PTS_CLOCK):
                out += _section_packet(SCTE35_PID, pending.pop(0).section, counter)
                counter += 1
        out += packet
    assert not pending, f"cues after the end of the video: {pending}"
    dest.write_bytes(bytes(out))
    return dest


def add_break(source: Path, dest: Path, event_id: int, out_at: float, back_at: float, notice: float = 1.0) -> Path:
    """``source`` with one ad break as a broadcaster signals it: a splice_insert out of network for ``out_at``
    seconds (after the first video PTS) and one back for ``back_at``, each sent ``notice`` seconds ahead, with a
    splice_null and a time_signal around them (both to be ignored)."""
    start = video_start_pts(source)
    cues = [
        Cue(max(out_at - notice - 0.5, 0.0), splice_info_section(0x00, b"")),
        Cue(out_at - notice, splice_insert(event_id, out_of_network=True, pts=start + round(out_at * PTS_CLOCK))),
        Cue(out_at + 0.2, time_signal(start + round((out_at + 0.5) * PTS_CLOCK))),
        Cue(back_at - notice, splice_insert(event_id, out_of_network=False, pts=start + round(back_at * PTS_CLOCK))),
    ]
    return add_cues(source, dest, cues)
