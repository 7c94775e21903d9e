"""AMF0 values (Adobe AMF0 spec) as Python values, with just enough AMF3 to read what encoders put in commands.

Mapping: number ↔ float (ints encode as numbers), boolean ↔ bool, string/long string ↔ str, object ↔ dict,
ECMA array ↔ :class:`EcmaArray`, strict array ↔ list, null ↔ None, undefined ↔ :data:`UNDEFINED`,
date ↔ :class:`AmfDate`.  A reference (marker 0x07) decodes to the very object it points at.

AMF3 appears in message types 15/17 (a format byte, then AMF0 where each AMF3 value hides behind the 0x11
"avmplus" marker, E-RTMP v2 "AMF0 and AMF3").  Commands from encoders only ever carry scalars there, so we read
AMF3 undefined/null/booleans/integers/doubles/strings and refuse AMF3 objects with a clear error.
"""

import struct
from dataclasses import dataclass
from typing import Any, Final

from pyingress.ingest.rtmp.errors import RtmpProtocolError

DEFAULT_MAX_DEPTH = 32  # metadata nests 2-3 levels; a deeper value is an attack, not an encoder

NUMBER, BOOLEAN, STRING, OBJECT, MOVIECLIP, NULL, UNDEFINED_MARKER, REFERENCE = range(8)
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING, UNSUPPORTED, RECORDSET, XML_DOCUMENT = range(8, 16)
TYPED_OBJECT, AVMPLUS = 0x10, 0x11


class _Undefined:
    _instance: "_Undefined | None" = None

    def __new__(cls) -> "_Undefined":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()


class EcmaArray(dict[str, Any]):
    """An AMF0 ECMA array (associative array); encoders use it for onMetaData."""


@dataclass(frozen=True)
class AmfDate:
    milliseconds: float  # since the Unix epoch, UTC
    timezone: int = 0  # minutes; the spec says to send 0


class _Reader:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.references: list[Any] = []
        self.amf3_strings: list[str] = []

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise RtmpProtocolError(f"AMF data truncated: needed {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def text(self, n: int) -> str:
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise RtmpProtocolError(f"AMF value nested deeper than {self.max_depth} levels")
        marker = self.u8()
        if marker == NUMBER:
            return struct.unpack(">d", self.take(8))[0]
        if marker == BOOLEAN:
            return self.u8() != 0
        if marker == STRING:
            return self.text(self.u16())
        if marker in (LONG_STRING, XML_DOCUMENT):
            return self.text(self.u32())
        if marker == NULL:
            return None
        if marker in (UNDEFINED_MARKER, UNSUPPORTED):
            return UNDEFINED
        if marker in (OBJECT, TYPED_OBJECT):
            if marker == TYPED_OBJECT:
                self.text(self.u16())  # class name: dropped, the properties are what matter
            obj: dict[str, Any] = {}
            self.references.append(obj)
            return self.properties(obj, depth)
        if marker == ECMA_ARRAY:
            self.u32()  # approximate count; the object-end marker is authoritative
            array = EcmaArray()
            self.references.append(array)
            return self.properties(array, depth, end_optional=True)
        if marker == STRICT_ARRAY:
            count = self.u32()
            if count > len(self.data) - self.pos:  # every element takes at least one byte
                raise RtmpProtocolError(
                    f"AMF strict array claims {count} elements in {len(self.data) - self.pos} bytes"
                )
            items: list[Any] = []
            self.references.append(items)
            for _ in range(count):
                items.append(self.value(depth + 1))
            return items
        if marker == DATE:
            milliseconds = struct.unpack(">d", self.take(8))[0]
            return AmfDate(milliseconds, struct.unpack(">h", self.take(2))[0])
        if marker == REFERENCE:
            index = self.u16()
            if index >= len(self.references):
                raise RtmpProtocolError(f"AMF reference {index} points past the {len(self.references)} objects read")
            return self.references[index]
        if marker == AVMPLUS:
            return self.amf3_value()
        if marker == OBJECT_END:
            raise RtmpProtocolError("AMF object-end marker outside an object")
        raise RtmpProtocolError(f"unsupported AMF0 type marker 0x{marker:02x}")

    def properties(self, target: dict[str, Any], depth: int, end_optional: bool = False) -> dict[str, Any]:
        while True:
            if end_optional and self.pos == len(self.data):
                return target  # some encoders end an onMetaData ECMA array with the message, not the marker
            key = self.text(self.u16())
            if not key and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return target
            target[key] = self.value(depth + 1)

    # -- AMF3 scalars (AMF3 spec §3) ---------------------------------------------------------------------------

    def u29(self) -> int:
        value = 0
        for i in range(4):
            byte = self.u8()
            if i == 3:
                return (value << 8) | byte
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value
        raise AssertionError("unreachable")

    def amf3_value(self) -> Any:
        marker = self.u8()
        if marker == 0x00:
            return UNDEFINED
        if marker == 0x01:
            return None
        if marker in (0x02, 0x03):
            return marker == 0x03
        if marker == 0x04:
            value = self.u29()
            return value - (1 << 29) if value & (1 << 28) else value
        if marker == 0x05:
            return struct.unpack(">d", self.take(8))[0]
        if marker == 0x06:
            header = self.u29()
            if not header & 1:
                index = header >> 1
                if index >= len(self.amf3_strings):
                    raise RtmpProtocolError(f"AMF3 string reference {index} is out of range")
                return self.amf3_strings[index]
            text = self.text(header >> 1)
            if text:
                self.amf3_strings.append(text)
            return text
        raise RtmpProtocolError(f"AMF3 value type 0x{marker:02x} is not supported in commands or metadata")


def decode_values(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Any]:
    """All AMF0 values in ``data`` (a command or data message body)."""
    reader = _Reader(data, max_depth)
    values = []
    while reader.pos < len(data):
        values.append(reader.value())
    return values


def decode_amf3_message(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Any]:
    """Values of an AMF3 command/data message (types 17/15): a format byte 0, then AMF0 with 0x11 switches."""
    if not data:
        return []
    if data[0] != 0:
        raise RtmpProtocolError(f"AMF3 message with unknown format selector {data[0]}")
    return decode_values(data[1:], max_depth=max_depth)


class _Writer:
    def __init__(self, max_depth: int) -> None:
        self.out = bytearray()
        self.max_depth = max_depth

    def string_body(self, text: str) -> None:
        raw = text.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise ValueError("AMF0 key longer than 65535 bytes")
        self.out += struct.pack(">H", len(raw)) + raw

    def value(self, value: Any, depth: int = 0) -> None:
        if depth > self.max_depth:
            raise ValueError(f"value nested deeper than {self.max_depth} levels")
        if value is None:
            self.out.append(NULL)
        elif value is UNDEFINED:
            self.out.append(UNDEFINED_MARKER)
        elif isinstance(value, bool):
            self.out += bytes([BOOLEAN, int(value)])
        elif isinstance(value, int | float):
            self.out += bytes([NUMBER]) + struct.pack(">d", float(value))
        elif isinstance(value, str):
            raw = value.encode("utf-8")
            if len(raw) <= 0xFFFF:
                self.out += bytes([STRING]) + struct.pack(">H", len(raw)) + raw
            else:
                self.out += bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        elif isinstance(value, AmfDate):
            self.out += bytes([DATE]) + struct.pack(">dh", value.milliseconds, value.timezone)
        elif isinstance(value, dict):
            if isinstance(value, EcmaArray):
                self.out += bytes([ECMA_ARRAY]) + struct.pack(">I", len(value))
            else:
                self.out.append(OBJECT)
            for key, item in value.items():
                self.string_body(str(key))
                self.value(item, depth + 1)
            self.out += b"\x00\x00" + bytes([OBJECT_END])
        elif isinstance(value, list | tuple):
            self.out += bytes([STRICT_ARRAY]) + struct.pack(">I", len(value))
            for item in value:
                self.value(item, depth + 1)
        else:
            raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def encode_values(*values: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    writer = _Writer(max_depth)
    for value in values:
        writer.value(value)
    return bytes(writer.out)
