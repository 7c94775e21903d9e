"""H.264/HEVC framing: AVCC/HVCC length-prefixed NAL units ↔ Annex-B start codes, parameter sets from avcC/hvcC.

FLV and MP4 carry H.264 as AVCC (``avcC`` record as decoder config, 1–4 byte length prefixes); WebRTC, the
LiveKit publisher and aiortc's packetiser want Annex-B (feasibility.md §7b, §8).  Pass-through converts here;
the transcoding path hands AVCC straight to the decoder with the record as extradata.
"""

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"

H264_IDR = 5
H264_SPS = 7
H264_PPS = 8
H264_AUD = 9
HEVC_VPS = 32
HEVC_SPS = 33
HEVC_PPS = 34


class BitstreamError(ValueError):
    """A record or access unit that does not parse."""


@dataclass(frozen=True)
class NalConfig:
    """What a decoder config record tells a packetiser: the length-prefix size and the parameter sets."""

    length_size: int
    parameter_sets: tuple[bytes, ...]  # NAL units without start codes, in the order to send them


def is_length_prefixed_config(record: bytes | None) -> bool:
    """avcC/hvcC records start with configurationVersion 1; Annex-B configs start with a start code."""
    return record is not None and len(record) > 0 and record[0] == 1


def parse_avcc(record: bytes) -> NalConfig:
    """ISO/IEC 14496-15 AVCDecoderConfigurationRecord."""
    if len(record) < 7 or record[0] != 1:
        raise BitstreamError("not an avcC record")
    length_size = (record[4] & 0x03) + 1
    sets: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):  # SPS count is 5 bits, PPS count a full byte
        if pos >= len(record):
            raise BitstreamError("truncated avcC record")
        pos = _read_parameter_sets(record, pos + 1, record[pos] & count_mask, sets, "avcC")
    return NalConfig(length_size, tuple(sets))


def _read_parameter_sets(record: bytes, pos: int, count: int, into: list[bytes], what: str) -> int:
    """``count`` parameter sets, each behind a 16-bit length, from ``pos``; returns where they end."""
    for _ in range(count):
        size = int.from_bytes(record[pos : pos + 2], "big")
        pos += 2
        if pos + size > len(record):
            raise BitstreamError(f"truncated {what} parameter set")
        into.append(record[pos : pos + size])
        pos += size
    return pos


def parse_hvcc(record: bytes) -> NalConfig:
    """ISO/IEC 14496-15 HEVCDecoderConfigurationRecord."""
    if len(record) < 23 or record[0] != 1:
        raise BitstreamError("not an hvcC record")
    length_size = (record[21] & 0x03) + 1
    arrays = record[22]
    pos = 23
    sets: list[bytes] = []
    for _ in range(arrays):
        if pos + 3 > len(record):
            raise BitstreamError("truncated hvcC record")
        count = int.from_bytes(record[pos + 1 : pos + 3], "big")
        pos = _read_parameter_sets(record, pos + 3, count, sets, "hvcC")
    return NalConfig(length_size, tuple(sets))


def split_length_prefixed(data: bytes, length_size: int) -> list[bytes]:
    units: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise BitstreamError("truncated NAL length")
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            raise BitstreamError("bad NAL length")
        units.append(data[pos : pos + size])
        pos += size
    return units


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B access unit, start codes (3 or 4 bytes) removed."""
    units: list[bytes] = []
    start = _next_start(data, 0)
    while start is not None:
        begin = start[1]
        following = _next_start(data, begin)
        end = following[0] if following is not None else len(data)
        while end > begin and data[end - 1] == 0 and following is not None:
            end -= 1  # a zero byte before a 4-byte start code belongs to the start code
        if end > begin:
            units.append(data[begin:end])
        start = following
    return units


def _next_start(data: bytes, pos: int) -> tuple[int, int] | None:
    index = data.find(b"\x00\x00\x01", pos)
    if index < 0:
        return None
    return index, index + 3


def h264_nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def hevc_nal_type(unit: bytes) -> int:
    return (unit[0] >> 1) & 0x3F


def to_annexb(units: list[bytes]) -> bytes:
    return b"".join(START_CODE + unit for unit in units)


class AnnexBWriter:
    """Turns one stream's access units into Annex-B with its parameter sets in front of every IDR/IRAP picture.

    Parameter sets come from the config record and from in-band VPS/SPS/PPS (an in-band set replaces the stored
    sets of its type, so a resolution change carried in-band is followed).
    """

    def __init__(self, codec: str, config: bytes | None) -> None:
        if codec not in ("h264", "hevc"):
            raise ValueError(f"no Annex-B framing for {codec}")
        self.codec = codec
        self._length_size: int | None = None
        self._sets: dict[int, list[bytes]] = {}
        self.update_config(config)

    def update_config(self, config: bytes | None) -> None:
        if not config:
            return
        if is_length_prefixed_config(config):
            parsed = parse_avcc(config) if self.codec == "h264" else parse_hvcc(config)
            self._length_size = parsed.length_size
            units = list(parsed.parameter_sets)
        else:
            self._length_size = None
            units = split_annexb(config)
        self._sets = {}
        self._store(units)

    def _nal_type(self, unit: bytes) -> int:
        return h264_nal_type(unit) if self.codec == "h264" else hevc_nal_type(unit)

    def _store(self, units: list[bytes]) -> None:
        fresh: dict[int, list[bytes]] = {}
        for unit in units:
            if unit:  # a zero-length parameter set in a publisher's record carries nothing (found by fuzzing)
                fresh.setdefault(self._nal_type(unit), []).append(unit)
        self._sets.update(fresh)

    @property
    def parameter_sets(self) -> list[bytes]:
        return [unit for kind in sorted(self._sets) for unit in self._sets[kind]]  # VPS<SPS<PPS, SPS<PPS

    def _is_parameter_set(self, unit: bytes) -> bool:
        if self.codec == "h264":
            return h264_nal_type(unit) in (H264_SPS, H264_PPS)
        return hevc_nal_type(unit) in (HEVC_VPS, HEVC_SPS, HEVC_PPS)

    def _is_random_access(self, unit: bytes) -> bool:
        if self.codec == "h264":
            return h264_nal_type(unit) == H264_IDR
        return 16 <= hevc_nal_type(unit) <= 21  # BLA, IDR, CRA

    def write(self, data: bytes) -> tuple[bytes, bool]:
        """(Annex-B access unit, whether it holds a random-access picture)."""
        length_size = self._length_size
        units = split_length_prefixed(data, length_size) if length_size is not None else split_annexb(data)
        in_band = [unit for unit in units if self._is_parameter_set(unit)]
        if in_band:
            self._store(in_band)
        keyframe = any(self._is_random_access(unit) for unit in units)
        if keyframe:
            body = [unit for unit in units if not self._is_parameter_set(unit)]
            lead = 1 if body and self.codec == "h264" and h264_nal_type(body[0]) == H264_AUD else 0
            units = body[:lead] + self.parameter_sets + body[lead:]
        return to_annexb(units), keyframe


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation-prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise BitstreamError("truncated parameter set")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_size(sps: bytes) -> tuple[int, int]:
    """Display width and height (after cropping) from an H.264 SPS NAL unit (with its header byte)."""
    bits = _Bits(sps[1:])
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        crop_x = 2 if chroma_format in (1, 2) else 1
        crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following != 0:
            following = (last + bits.se() + 256) % 256
        last = following or last


def vp8_frame_info(data: bytes) -> tuple[bool, int, int]:
    """(keyframe, width, height) of a VP8 frame; size is 0×0 for interframes (RFC 6386 §9.1)."""
    if len(data) < 3:
        raise BitstreamError("truncated VP8 frame")
    keyframe = not data[0] & 1
    if not keyframe:
        return False, 0, 0
    if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        raise BitstreamError("bad VP8 keyframe start code")
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return True, width, height
