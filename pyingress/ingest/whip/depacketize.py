"""RTP payloads of one frame → the frame's bytes, per codec (sans-IO; RFC 6184 H.264, RFC 7741 VP8, RFC 7587 Opus).

The frame assembler (``assembler.py``) hands over the payloads of one frame in sequence order, complete; these
functions only undo the payload format and say whether the result is a keyframe.  A payload that breaks its format
(a fragment without its start, a truncated aggregation) raises ``DepacketizeError``: the frame is dropped and the
stream waits for its next keyframe, rather than passing damage on to a decoder or to viewers.

``is_frame_start`` is what the assembler asks after a loss: could this packet begin a frame?
"""

from collections.abc import Sequence

START_CODE = b"\x00\x00\x00\x01"
H264_IDR = 5
H264_STAP_A = 24
H264_FU_A = 28


class DepacketizeError(ValueError):
    """The payloads do not form a frame of their codec."""


def h264_access_unit(payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(Annex-B access unit, holds an IDR slice) from the RTP payloads of one H.264 frame."""
    units: list[bytes] = []
    fragment: bytearray | None = None
    for payload in payloads:
        if not payload:
            continue  # padding
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            if fragment is not None:
                raise DepacketizeError("H.264 fragment interrupted by a single NAL unit")
            units.append(payload)
        elif nal_type == H264_STAP_A:
            if fragment is not None:
                raise DepacketizeError("H.264 fragment interrupted by an aggregation packet")
            units.extend(_stap_a(payload))
        elif nal_type == H264_FU_A:
            if len(payload) < 2:
                raise DepacketizeError("truncated H.264 FU-A")
            header = payload[1]
            if header & 0x80:  # start
                if fragment is not None:
                    raise DepacketizeError("H.264 FU-A started twice")
                fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            elif fragment is None:
                raise DepacketizeError("H.264 FU-A continues a fragment whose start was lost")
            fragment += payload[2:]
            if header & 0x40:  # end
                units.append(bytes(fragment))
                fragment = None
        else:
            raise DepacketizeError(f"H.264 packetization type {nal_type} is not supported (mode 0/1: 1-23, 24, 28)")
    if fragment is not None:
        raise DepacketizeError("H.264 FU-A without its end")
    if not units:
        raise DepacketizeError("H.264 frame without a NAL unit")
    keyframe = any(unit[0] & 0x1F == H264_IDR for unit in units)
    return b"".join(START_CODE + unit for unit in units), keyframe


def _stap_a(payload: bytes) -> list[bytes]:
    units = []
    offset = 1
    while offset < len(payload):
        if offset + 2 > len(payload):
            raise DepacketizeError("truncated H.264 STAP-A")
        size = int.from_bytes(payload[offset : offset + 2], "big")
        offset += 2
        if size == 0 or offset + size > len(payload):
            raise DepacketizeError("bad H.264 STAP-A unit size")
        units.append(payload[offset : offset + size])
        offset += size
    return units


def vp8_descriptor(payload: bytes) -> tuple[int, bool, int]:
    """(descriptor length, S bit, partition index) of a VP8 payload descriptor (RFC 7741 §4.2)."""
    if not payload:
        raise DepacketizeError("empty VP8 payload")
    first = payload[0]
    length = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            raise DepacketizeError("truncated VP8 payload descriptor")
        extension = payload[1]
        length = 2
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= length:
                raise DepacketizeError("truncated VP8 picture id")
            length += 2 if payload[length] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            length += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            length += 1
    if length > len(payload):
        raise DepacketizeError("truncated VP8 payload descriptor")
    return length, bool(first & 0x10), first & 0x07


def vp8_frame(payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(VP8 frame, is a keyframe) from the RTP payloads of one frame."""
    parts: list[bytes] = []
    for payload in payloads:
        if not payload:
            continue
        length, start, partition = vp8_descriptor(payload)
        if not parts and not (start and partition == 0):
            raise DepacketizeError("VP8 frame does not begin at the start of partition 0")
        parts.append(payload[length:])
    frame = b"".join(parts)
    if not frame:
        raise DepacketizeError("empty VP8 frame")
    return frame, not frame[0] & 0x01  # P bit clear: keyframe (RFC 6386 §9.1)


def is_frame_start(codec: str, payload: bytes) -> bool:
    """Whether this payload could be the first of a frame (after a loss, the assembler resumes at one)."""
    if not payload:
        return False
    if codec == "h264":
        nal_type = payload[0] & 0x1F
        if nal_type == H264_FU_A:
            return len(payload) >= 2 and bool(payload[1] & 0x80)
        return 1 <= nal_type <= H264_STAP_A
    if codec == "vp8":
        try:
            _, start, partition = vp8_descriptor(payload)
        except DepacketizeError:
            return False
        return start and partition == 0
    return True  # audio: every packet is a frame


def frame_of(codec: str, payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(frame bytes, keyframe) for any codec we receive; audio frames are one payload, always "key"."""
    if codec == "h264":
        return h264_access_unit(payloads)
    if codec == "vp8":
        return vp8_frame(payloads)
    data = b"".join(payloads)
    if not data:
        raise DepacketizeError(f"empty {codec} frame")
    return data, True
