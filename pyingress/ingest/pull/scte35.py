"""SCTE-35 splice_info_section parsing (sans-IO): the cue messages an MPEG-TS carries on a stream of type 0x86.

What livekit/ingress does with them (ingress.md §1.6, its ``pkg/media/splice_processor.go``): only
``splice_insert`` commands count; each sets the participant attribute ``ingress.outOfNetwork.eventID`` to the
event id when ``out_of_network_indicator`` is 1 and to "" (LiveKit removes the attribute) when it is 0 — a return
to the network, or an event cancelled (a cancel carries no flags, read as 0 as GStreamer reads it).  An immediate
splice takes effect when the section arrives; otherwise at its ``splice_time`` (``pts_time`` plus the section's
``pts_adjustment``, on the 33-bit 90 kHz clock of the stream's PTS).  Other commands (splice_null, time_signal,
splice_schedule …) and encrypted sections are recognised and ignored, as the reference ignores them.

``parse_splice_info(section)`` takes one whole section (FFmpeg's MPEG-TS demuxer hands a SCTE-35 stream's packets
over as whole sections, CRC already checked; we check it again, the bytes are anyone's) and returns a
``SpliceInfo``; anything malformed raises ``Scte35Error``.  ``SpliceSchedule`` holds splices until the media
reaches their splice time.  Field layout: ANSI/SCTE 35 §9.6 (splice_info_section), §9.7.3
(splice_insert), §9.8.1 (splice_time), §9.8.2 (break_duration).
"""

from dataclasses import dataclass

OUT_OF_NETWORK_ATTRIBUTE = "ingress.outOfNetwork.eventID"
TABLE_ID = 0xFC
SPLICE_NULL, SPLICE_SCHEDULE, SPLICE_INSERT, TIME_SIGNAL = 0x00, 0x04, 0x05, 0x06
PTS_CLOCK = 90_000
PTS_MODULUS = 1 << 33  # PTS and splice times are 33-bit counters that wrap (about every 26.5 hours)

_CRC_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte << 24
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x04C11DB7) if _crc & 0x80000000 else _crc << 1
    _CRC_TABLE.append(_crc & 0xFFFFFFFF)


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected, no final xor): the CRC of MPEG-TS
    sections, SCTE-35's included.  A section with its CRC appended checks to 0."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


class Scte35Error(ValueError):
    """Bytes that are not a well-formed splice_info_section."""


@dataclass(frozen=True)
class SpliceInsert:
    """One splice_insert command, as far as the attribute needs it (component splices keep the first time)."""

    event_id: int
    cancelled: bool = False
    out_of_network: bool = False
    immediate: bool = False
    splice_pts: int | None = None  # pts_time + pts_adjustment, mod 2^33; None: immediate or no time given
    duration: int | None = None  # break duration in 90 kHz ticks, when signalled
    auto_return: bool = False

    @property
    def attribute_value(self) -> str:
        """What ``ingress.outOfNetwork.eventID`` becomes (the reference's rule): the id going out, else ""."""
        return str(self.event_id) if self.out_of_network and not self.cancelled else ""


@dataclass(frozen=True)
class SpliceInfo:
    """A parsed splice_info_section: its command type, and the splice_insert when it is one."""

    command_type: int
    pts_adjustment: int = 0
    encrypted: bool = False
    tier: int = 0xFFF
    insert: SpliceInsert | None = None


class _Bits:
    """Big-endian bit reader over one section; reading past its end is a ``Scte35Error``."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.bit = start * 8
        self.end = (len(data) if end is None else end) * 8

    def read(self, count: int) -> int:
        if self.bit + count > self.end:
            raise Scte35Error("section ends inside a field")
        value = 0
        for _ in range(count):
            value = (value << 1) | ((self.data[self.bit >> 3] >> (7 - (self.bit & 7))) & 1)
            self.bit += 1
        return value

    def skip(self, count: int) -> None:
        self.read(count)

    @property
    def byte(self) -> int:
        return self.bit >> 3


def parse_splice_info(section: bytes) -> SpliceInfo:
    """One whole splice_info_section (table id 0xFC through its CRC_32)."""
    if len(section) < 3:
        raise Scte35Error("section shorter than its header")
    if section[0] != TABLE_ID:
        raise Scte35Error(f"table id 0x{section[0]:02x} is not a splice_info_section (0xfc)")
    length = ((section[1] & 0x0F) << 8) | section[2]
    total = 3 + length
    if length < 11 + 4 or total > len(section):  # the fixed fields through splice_command_type, and the CRC
        raise Scte35Error(f"section_length {length} does not fit the {len(section)} bytes given")
    if section[1] & 0x80:
        raise Scte35Error("section_syntax_indicator is set: not a splice_info_section")
    if crc32_mpeg2(section[:total]) != 0:
        raise Scte35Error("CRC_32 does not match")
    bits = _Bits(section, 3, total - 4)
    bits.skip(8)  # protocol_version: 0 is the only one defined; later ones stay readable
    encrypted = bool(bits.read(1))
    bits.skip(6)  # encryption_algorithm
    pts_adjustment = bits.read(33)
    bits.skip(8)  # cw_index
    tier = bits.read(12)
    command_length = bits.read(12)
    command_type = bits.read(8)
    if encrypted:
        return SpliceInfo(command_type, pts_adjustment, encrypted=True, tier=tier)  # no key, nothing to read
    command_start = bits.byte
    insert = None
    if command_type == SPLICE_INSERT:
        insert = _splice_insert(bits, pts_adjustment)
        # 0xFFF is the legacy "unknown length"; otherwise the command must fit the length it declared.
        if command_length != 0xFFF and bits.byte - command_start > command_length:
            raise Scte35Error("splice_insert runs past its splice_command_length")
    return SpliceInfo(command_type, pts_adjustment, tier=tier, insert=insert)


def _splice_insert(bits: _Bits, pts_adjustment: int) -> SpliceInsert:
    event_id = bits.read(32)
    cancelled = bool(bits.read(1))
    bits.skip(7)
    if cancelled:
        return SpliceInsert(event_id, cancelled=True)
    out_of_network = bool(bits.read(1))
    program_splice = bool(bits.read(1))
    has_duration = bool(bits.read(1))
    immediate = bool(bits.read(1))
    bits.skip(4)  # event_id_compliance_flag (2020) and reserved
    splice_time: int | None = None
    if program_splice:
        if not immediate:
            splice_time = _splice_time(bits)
    else:
        for _ in range(bits.read(8)):  # component_count: each component_tag with its own time
            bits.skip(8)
            if not immediate:
                component_time = _splice_time(bits)
                if splice_time is None:
                    splice_time = component_time  # the first component's time, as GStreamer's "splice-time"
    duration: int | None = None
    auto_return = False
    if has_duration:
        auto_return = bool(bits.read(1))
        bits.skip(6)
        duration = bits.read(33)
    bits.skip(16 + 8 + 8)  # unique_program_id, avail_num, avails_expected
    return SpliceInsert(
        event_id,
        out_of_network=out_of_network,
        immediate=immediate,
        splice_pts=None if splice_time is None else (splice_time + pts_adjustment) % PTS_MODULUS,
        duration=duration,
        auto_return=auto_return,
    )


def _splice_time(bits: _Bits) -> int | None:
    if bits.read(1):  # time_specified_flag
        bits.skip(6)
        return bits.read(33)
    bits.skip(7)
    return None


def splice_media_time(splice_pts: int, now_media_time: float) -> float | None:
    """The media time (seconds, on the demuxer's unwrapped clock) at which ``splice_pts`` (33-bit, 90 kHz) falls,
    judged from ``now_media_time``: a splice up to half the 33-bit range ahead is that far in the future; anything
    else is already past (None).  FFmpeg unwraps the timestamps it hands out; a splice time stays wrapped."""
    now = round(now_media_time * PTS_CLOCK) % PTS_MODULUS
    ahead = (splice_pts - now) % PTS_MODULUS
    if ahead >= PTS_MODULUS // 2:
        return None
    return now_media_time + ahead / PTS_CLOCK


@dataclass(frozen=True)
class SpliceCue:
    """A splice_insert as read from the stream, with the media time (seconds) the demuxer stamped its section with
    (FFmpeg: the program's last PCR), None when it had none."""

    insert: SpliceInsert
    arrived: float | None = None


class SpliceSchedule:
    """Splices waiting for their splice time (sans-IO: media times in, splices that take effect out).

    ``add`` a cue when the stream reaches it and ``reached(media_time)`` after each packet sent: a splice takes
    effect once media at its splice time has gone out, as the reference schedules it at the splice's running
    time.  An immediate splice, a cancel, or a splice time already past takes effect at once.  Beyond the
    reference: a cancel also drops the pending splices of its event, so a cancelled break never starts.
    """

    MAX_PENDING = 64  # a real stream has one or two ahead; a hostile one must not grow this

    def __init__(self) -> None:
        self.pending: list[tuple[float, SpliceInsert]] = []

    def add(self, cue: SpliceCue, now_media_time: float | None) -> list[SpliceInsert]:
        """The splices due at once (this one, or none when it waits for its time)."""
        insert = cue.insert
        if insert.cancelled:
            self.pending = [(at, pending) for at, pending in self.pending if pending.event_id != insert.event_id]
            return [insert]
        reference = cue.arrived if cue.arrived is not None else now_media_time
        if insert.splice_pts is None or reference is None:
            return [insert]
        at = splice_media_time(insert.splice_pts, reference)
        if at is None or (now_media_time is not None and at <= now_media_time):
            return [insert]
        self.pending.append((at, insert))
        self.pending.sort(key=lambda entry: entry[0])  # stable: splices at the same time keep their order
        del self.pending[self.MAX_PENDING :]
        return []

    def reached(self, media_time: float) -> list[SpliceInsert]:
        """The pending splices whose time has come, in time order."""
        due = 0
        while due < len(self.pending) and self.pending[due][0] <= media_time:
            due += 1
        taken, self.pending = self.pending[:due], self.pending[due:]
        return [insert for _, insert in taken]
