"""RTP payloads of one frame → the frame's bytes, per codec (sans-IO; RFC 6184 H.264, RFC 7741 VP8, RFC 9628 VP9,
the AV1 RTP payload format, RFC 7587 Opus; G.711 payloads are the samples).

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


def vp9_descriptor(payload: bytes) -> tuple[int, bool, bool]:
    """(descriptor length, B: begins a frame, P: inter-predicted) of a VP9 payload descriptor (RFC 9628 §4.2)."""
    if not payload:
        raise DepacketizeError("empty VP9 payload")
    first = payload[0]
    flexible = bool(first & 0x10)
    at = 1
    try:
        if first & 0x80:  # I: picture id, 7 or 15 bits
            at += 2 if payload[at] & 0x80 else 1
        if first & 0x20:  # L: layer indices, and TL0PICIDX in non-flexible mode
            at += 1 if flexible else 2
        if flexible and first & 0x40:  # F and P: up to 3 reference indices
            for _ in range(3):
                more = payload[at] & 0x01
                at += 1
                if not more:
                    break
        if first & 0x02:  # V: scalability structure
            ss = payload[at]
            at += 1
            if ss & 0x10:  # Y: spatial layer sizes
                at += 4 * ((ss >> 5) + 1)
            if ss & 0x08:  # G: picture group description
                groups = payload[at]
                at += 1
                for _ in range(groups):
                    references = (payload[at] >> 2) & 0x03
                    at += 1 + references
    except IndexError:
        raise DepacketizeError("truncated VP9 payload descriptor") from None
    if at > len(payload):
        raise DepacketizeError("truncated VP9 payload descriptor")
    return at, bool(first & 0x08), bool(first & 0x40)


def vp9_frame(payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(VP9 frame, is a keyframe) from the RTP payloads of one frame (one spatial layer: no SVC superframes)."""
    parts: list[bytes] = []
    keyframe = False
    for payload in payloads:
        if not payload:
            continue
        length, begins, predicted = vp9_descriptor(payload)
        if not parts:
            if not begins:
                raise DepacketizeError("VP9 frame does not begin with its B packet")
            keyframe = not predicted
        parts.append(payload[length:])
    frame = b"".join(parts)
    if not frame:
        raise DepacketizeError("empty VP9 frame")
    return frame, keyframe


AV1_SEQUENCE_HEADER = 1
AV1_TEMPORAL_DELIMITER = 2
AV1_FRAME_HEADER = 3
AV1_FRAME = 6
AV1_TILE_LIST = 8


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if at + i >= len(data):
            raise DepacketizeError("truncated AV1 length")
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise DepacketizeError("AV1 length longer than 8 bytes")


def _leb128_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _av1_key_frame_header(obu: bytes, obu_type: int, header_size: int) -> bool:
    """A frame (header) OBU whose uncompressed header says KEY_FRAME: show_existing_frame 0, frame_type 0
    (AV1 §5.9.2; the sequence header may travel out of band, as some encoders send it)."""
    if obu_type not in (AV1_FRAME_HEADER, AV1_FRAME):
        return False
    at = header_size
    if obu[0] & 0x02:  # skip its size field
        _, at = _leb128(obu, header_size)
    return at < len(obu) and obu[at] & 0xE0 == 0


def av1_temporal_unit(payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(AV1 temporal unit in low-overhead format, is a key frame) from one frame's RTP payloads.

    Each payload: an aggregation header (Z, Y, W, N) and OBU elements, length-prefixed except a W-counted last
    one; a fragment continues across packets (Z/Y).  OBUs are rewritten with ``obu_has_size_field`` set, temporal
    delimiters and tile lists dropped (the RTP format forbids them), one delimiter put in front.
    """
    obus: list[bytes] = []
    fragment: bytearray | None = None
    for payload in payloads:
        if not payload:
            continue
        header = payload[0]
        continues, will_continue, count = bool(header & 0x80), bool(header & 0x40), (header >> 4) & 0x03
        if continues and fragment is None:
            raise DepacketizeError("AV1 fragment continues an OBU whose start was lost")
        if not continues and fragment is not None:
            raise DepacketizeError("AV1 OBU fragment without its end")
        at, element = 1, 0
        elements: list[bytes] = []
        while at < len(payload):
            element += 1
            if count and element == count:
                size = len(payload) - at
            else:
                size, at = _leb128(payload, at)
            if at + size > len(payload):
                raise DepacketizeError("AV1 OBU element longer than its packet")
            elements.append(payload[at : at + size])
            at += size
        for position, data in enumerate(elements):
            first, last = position == 0, position == len(elements) - 1
            if first and continues:
                assert fragment is not None
                fragment += data
                data = bytes(fragment)
                fragment = None
            if last and will_continue:
                fragment = bytearray(data)
                continue
            obus.append(data)
    if fragment is not None:
        raise DepacketizeError("AV1 OBU fragment without its end")
    unit = bytearray(b"\x12\x00")  # temporal delimiter, with an empty size field
    keyframe = False
    for obu in obus:
        if not obu:
            continue
        obu_type = (obu[0] >> 3) & 0x0F
        if obu_type in (AV1_TEMPORAL_DELIMITER, AV1_TILE_LIST):
            continue
        header_size = 2 if obu[0] & 0x04 else 1
        if len(obu) < header_size:
            raise DepacketizeError("truncated AV1 OBU header")
        keyframe = keyframe or obu_type == AV1_SEQUENCE_HEADER or _av1_key_frame_header(obu, obu_type, header_size)
        if obu[0] & 0x02:
            unit += obu  # already carries its size
        else:
            body = obu[header_size:]
            unit += bytes([obu[0] | 0x02]) + obu[1:header_size] + _leb128_bytes(len(body)) + body
    if len(unit) == 2:
        raise DepacketizeError("AV1 temporal unit without an OBU")
    return bytes(unit), keyframe


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
    if codec == "vp9":
        try:
            return vp9_descriptor(payload)[1]
        except DepacketizeError:
            return False
    if codec == "av1":
        return not payload[0] & 0x80  # Z clear: its first OBU element starts here
    return True  # audio: every packet is a frame


def frame_of(codec: str, payloads: Sequence[bytes]) -> tuple[bytes, bool]:
    """(frame bytes, keyframe) for any codec we receive; an audio frame is one payload, always "key"."""
    if codec == "h264":
        return h264_access_unit(payloads)
    if codec == "vp8":
        return vp8_frame(payloads)
    if codec == "vp9":
        return vp9_frame(payloads)
    if codec == "av1":
        return av1_temporal_unit(payloads)
    data = b"".join(payloads)
    if not data:
        raise DepacketizeError(f"empty {codec} frame")
    return data, True
