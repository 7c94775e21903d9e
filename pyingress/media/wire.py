"""The framed pipe protocol between a session and its media worker process (sans-IO).

Every message is ``[u32 big-endian body length][u8 type][payload]``.  Media travels as a fixed binary header plus
raw bytes (no copies through JSON, a 1080p ladder is ~10 Mb/s each way); rare control messages are JSON.  Nothing
is pickled: the worker parses hostile bitstreams, and the parent must not execute what a compromised worker says.

    session → worker                               worker → session
    C  config (JSON PipelineConfig)                F  encoded frame: header + data
    S  stream description (JSON)                   V  event (JSON, events.py)
    P  packet: header + codec config + data
    K  keyframe request (u8 quality)
    A  layer active (u8 quality, u8 active)
    E  end of stream
"""

import base64
import json
import struct
from dataclasses import asdict, dataclass
from fractions import Fraction

from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEvent, event_from_json, event_to_json
from pyingress.media.packets import EncodedPacket, MediaKind, OutputFrame, StreamDescription

MAX_BODY = 64 * 1024 * 1024  # far above any access unit; a larger length means a corrupt stream
_LENGTH = struct.Struct(">I")
# kind, flags, pts, dts, time base num/den, arrival ns, codec config length
_PACKET = struct.Struct(">BBqqIIqI")
# kind, codec, quality (255 = none), flags, pts, duration, width, height, arrival ns
_FRAME = struct.Struct(">BBBBqIHHq")
_KINDS: tuple[MediaKind, MediaKind] = ("video", "audio")
_OUTPUT_CODECS = ("h264", "vp8", "opus")
_VIDEO_TIME_BASE = Fraction(1, 90_000)  # made once: a Fraction costs microseconds, there are ~150 frames a second
_AUDIO_TIME_BASE = Fraction(1, 48_000)
_NO_QUALITY = 255
_KEYFRAME = 1
_HAS_CONFIG = 2


class WireError(ValueError):
    """Bytes that are not this protocol."""


@dataclass(frozen=True)
class ConfigMessage:
    config: PipelineConfig


@dataclass(frozen=True)
class StreamMessage:
    desc: StreamDescription


@dataclass(frozen=True)
class PacketMessage:
    packet: EncodedPacket
    arrival_ns: int


@dataclass(frozen=True)
class KeyframeRequest:
    quality: int


@dataclass(frozen=True)
class LayerActive:
    quality: int
    active: bool


@dataclass(frozen=True)
class EndOfStream:
    pass


@dataclass(frozen=True)
class FrameMessage:
    frame: OutputFrame
    arrival_ns: int


@dataclass(frozen=True)
class EventMessage:
    event: PipelineEvent


Message = (
    ConfigMessage
    | StreamMessage
    | PacketMessage
    | KeyframeRequest
    | LayerActive
    | EndOfStream
    | FrameMessage
    | EventMessage
)


def _frame(kind: bytes, *parts: bytes) -> bytes:
    size = 1 + sum(len(part) for part in parts)
    return b"".join((_LENGTH.pack(size), kind, *parts))


def encode_config(config: PipelineConfig) -> bytes:
    return _frame(b"C", config.to_json())


def encode_stream(desc: StreamDescription) -> bytes:
    raw = asdict(desc)
    raw["codec_config"] = base64.b64encode(desc.codec_config).decode() if desc.codec_config is not None else None
    return _frame(b"S", json.dumps(raw).encode())


def encode_packet(packet: EncodedPacket, arrival_ns: int) -> bytes:
    config = packet.codec_config or b""
    flags = (_KEYFRAME if packet.keyframe else 0) | (_HAS_CONFIG if packet.codec_config is not None else 0)
    header = _PACKET.pack(
        _KINDS.index(packet.kind),
        flags,
        packet.pts,
        packet.dts,
        packet.time_base.numerator,
        packet.time_base.denominator,
        arrival_ns,
        len(config),
    )
    return _frame(b"P", header, config, packet.data)


def encode_keyframe_request(quality: int) -> bytes:
    return _frame(b"K", bytes([quality]))


def encode_layer_active(quality: int, active: bool) -> bytes:
    return _frame(b"A", bytes([quality, int(active)]))


def encode_end() -> bytes:
    return _frame(b"E")


def encode_output(frame: OutputFrame, arrival_ns: int) -> bytes:
    header = _FRAME.pack(
        _KINDS.index(frame.kind),
        _OUTPUT_CODECS.index(frame.codec),
        _NO_QUALITY if frame.quality is None else frame.quality,
        _KEYFRAME if frame.keyframe else 0,
        frame.pts,
        frame.duration,
        frame.width,
        frame.height,
        arrival_ns,
    )
    return _frame(b"F", header, frame.data)


def encode_event(event: PipelineEvent) -> bytes:
    return _frame(b"V", event_to_json(event))


class MessageReader:
    """Accumulates pipe bytes and yields whole messages; one reader per direction of one pipe."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._codecs: dict[str, str] = {}  # kind -> codec of the last stream message; packets carry none
        self._time_bases: dict[tuple[int, int], Fraction] = {}

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if size == 0 or size > MAX_BODY:
                raise WireError(f"bad message length {size}")
            if len(self._buffer) < _LENGTH.size + size:
                break
            body = bytes(self._buffer[_LENGTH.size : _LENGTH.size + size])
            del self._buffer[: _LENGTH.size + size]
            messages.append(self._decode(body))
        return messages

    def _decode(self, body: bytes) -> Message:
        kind, payload = body[:1], body[1:]
        try:
            if kind == b"P":
                return self._packet(payload)
            if kind == b"F":
                return _output(payload)
            if kind == b"C":
                return ConfigMessage(PipelineConfig.from_json(payload))
            if kind == b"S":
                raw = json.loads(payload)
                if raw["codec_config"] is not None:
                    raw["codec_config"] = base64.b64decode(raw["codec_config"])
                desc = StreamDescription(**raw)
                self._codecs[desc.kind] = desc.codec
                return StreamMessage(desc)
            if kind == b"K":
                return KeyframeRequest(payload[0])
            if kind == b"A":
                return LayerActive(payload[0], bool(payload[1]))
            if kind == b"E":
                return EndOfStream()
            if kind == b"V":
                return EventMessage(event_from_json(payload))
        except (struct.error, IndexError, KeyError, TypeError, ValueError) as error:
            raise WireError(f"malformed {kind!r} message: {error}") from None
        raise WireError(f"unknown message type {kind!r}")

    def _time_base(self, num: int, den: int) -> Fraction:
        """One Fraction per time base seen (a stream has one): building one per packet costs microseconds."""
        found = self._time_bases.get((num, den))
        if found is None:
            found = Fraction(num, den)
            if len(self._time_bases) < 16:  # a stream has one; never let a strange one grow this
                self._time_bases[(num, den)] = found
        return found

    def _packet(self, payload: bytes) -> PacketMessage:
        kind, flags, pts, dts, num, den, arrival, config_size = _PACKET.unpack_from(payload)
        start = _PACKET.size
        if start + config_size > len(payload) or den == 0:
            raise WireError("malformed packet header")
        config = payload[start : start + config_size] if flags & _HAS_CONFIG else None
        media = _KINDS[kind]
        packet = EncodedPacket(
            kind=media,
            codec=self._codecs.get(media, ""),
            data=payload[start + config_size :],
            pts=pts,
            dts=dts,
            time_base=self._time_base(num, den),
            keyframe=bool(flags & _KEYFRAME),
            codec_config=config,
        )
        return PacketMessage(packet, arrival)


def _output(payload: bytes) -> FrameMessage:
    kind, codec, quality, flags, pts, duration, width, height, arrival = _FRAME.unpack_from(payload)
    media = _KINDS[kind]
    frame = OutputFrame(
        kind=media,
        codec=_OUTPUT_CODECS[codec],
        data=payload[_FRAME.size :],
        pts=pts,
        time_base=_VIDEO_TIME_BASE if media == "video" else _AUDIO_TIME_BASE,
        keyframe=bool(flags & _KEYFRAME),
        quality=None if quality == _NO_QUALITY else quality,
        width=width,
        height=height,
        duration=duration,
    )
    return FrameMessage(frame, arrival)
