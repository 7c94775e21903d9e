"""A container's rotation (MP4/MOV display matrix), carried to the transcoder the way RTMP carries it: in the
bitstream, as the display-orientation SEI that phones put there.

The transcoder turns pictures upright by the display matrix its decoder reports (media/decode.py), and that
matrix comes from a display-orientation SEI in the H.264/HEVC stream — which is how a phone's RTMP stream says
it is sideways.  A file says it in its container instead (``tkhd`` matrix), which never reaches a decoder that
is opened from a codec name and extradata.  So the demux worker reads the container's rotation (FFmpeg hands it
to the first decoded picture) and writes the same SEI in front of the first picture of every keyframe: the rest
of the data path cannot tell a rotated file from a rotated phone.  Other codecs (VP8, VP9, AV1) have no such
message; a rotated file in those plays as stored.

    H.264 SEI payload 47 (ITU-T H.264 D.1.27): cancel 0, hor_flip, ver_flip, anticlockwise_rotation u(16) in
    1/65536 of a turn, repetition_period ue(v) = 1 (until the next one), extension 0.
    HEVC prefix SEI payload 47 (ITU-T H.265 D.2.16): the same, with persistence_flag 1 for the repetition period.
"""

from pyingress.media.bitstream import (
    BitstreamError,
    h264_nal_type,
    hevc_nal_type,
    is_length_prefixed_config,
    parse_avcc,
    parse_hvcc,
    split_annexb,
    split_length_prefixed,
)

_DISPLAY_ORIENTATION = 47


def _bits_to_bytes(bits: str) -> bytes:
    bits += "1"  # the SEI payload's byte-alignment bit, then zeros
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _escape(rbsp: bytes) -> bytes:
    """Emulation prevention: no 0x000000-0x000003 inside a NAL unit."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def orientation_sei(codec: str, rotation: int) -> bytes | None:
    """The SEI NAL unit (no start code or length) that tells a decoder to turn pictures ``rotation`` degrees
    counter-clockwise (FFmpeg's sense, as ``VideoFrame.rotation`` reads it); None for other codecs or no turn."""
    turn = rotation % 360
    if turn == 0 or codec not in ("h264", "hevc"):
        return None
    angle = format(turn * 65536 // 360, "016b")
    if codec == "h264":
        payload = _bits_to_bytes("000" + angle + "010" + "0")  # repetition_period ue(1) = 010
        header = bytes([0x06])
    else:
        payload = _bits_to_bytes("000" + angle + "1" + "0")
        header = bytes([39 << 1, 0x01])  # PREFIX_SEI_NUT, layer 0, temporal id 1
    message = bytes([_DISPLAY_ORIENTATION, len(payload)]) + payload
    return header + _escape(message + b"\x80")  # rbsp_trailing_bits


class Orienter:
    """Writes the orientation SEI into every keyframe of one H.264/HEVC stream, in the stream's own framing."""

    def __init__(self, codec: str, codec_config: bytes | None, rotation: int) -> None:
        self.sei = orientation_sei(codec, rotation)
        self.codec = codec
        self.length_size = 0  # 0: Annex-B
        if self.sei is not None and is_length_prefixed_config(codec_config):
            assert codec_config is not None
            try:
                config = parse_avcc(codec_config) if codec == "h264" else parse_hvcc(codec_config)
            except BitstreamError:
                self.sei = None  # a record that does not parse: leave the stream as it is, the decoder will say
                return
            self.length_size = config.length_size

    @property
    def active(self) -> bool:
        return self.sei is not None

    def apply(self, data: bytes) -> bytes:
        """``data`` (one access unit) with the SEI before its first picture NAL; unchanged if it does not parse."""
        if self.sei is None:
            return data
        try:
            units = split_length_prefixed(data, self.length_size) if self.length_size else split_annexb(data)
        except ValueError:
            return data
        vcl = next((i for i, unit in enumerate(units) if unit and self._is_picture(unit)), len(units))
        units.insert(vcl, self.sei)
        if self.length_size:
            return b"".join(len(unit).to_bytes(self.length_size, "big") + unit for unit in units)
        return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)

    def _is_picture(self, unit: bytes) -> bool:
        if self.codec == "h264":
            return 1 <= h264_nal_type(unit) <= 5
        return hevc_nal_type(unit) < 32
