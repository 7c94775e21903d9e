"""AMF0 values as encoders send them in commands and onMetaData, and the limits that keep a hostile body cheap."""

import math
import struct

import pytest

from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.amf0 import UNDEFINED, AmfDate, EcmaArray, decode_amf3_message, decode_values, encode_values
from pyingress.ingest.rtmp.errors import RtmpProtocolError


def test_round_trip_of_every_type() -> None:
    values = [
        1.5,
        -0.0,
        True,
        False,
        "connect",
        "x" * 70000,  # long string
        {"app": "live", "nested": {"n": 3.0, "list": [1.0, "two", None]}},
        EcmaArray(width=320.0, height=240.0),
        [1.0, 2.0],
        None,
        UNDEFINED,
        AmfDate(1.7e12, 0),
        "ünïcødé ✓",
    ]
    assert decode_values(encode_values(*values)) == values
    decoded = decode_values(encode_values(*values))
    assert isinstance(decoded[7], EcmaArray) and decoded[10] is UNDEFINED


def test_integers_encode_as_numbers() -> None:
    assert encode_values(3) == b"\x00" + struct.pack(">d", 3.0)
    assert math.isnan(decode_values(b"\x00" + struct.pack(">d", float("nan")))[0])


def test_ffmpeg_style_connect_command_decodes() -> None:
    body = encode_values(
        "connect",
        1.0,
        {
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; Lavf59.27.100)",
            "tcUrl": "rtmp://h/live",
        },
    )
    name, txn, command = decode_values(body)
    assert (name, txn, command["app"], command["tcUrl"]) == ("connect", 1.0, "live", "rtmp://h/live")


def test_reference_points_at_an_earlier_object() -> None:
    first = encode_values({"a": 1.0})
    body = first + bytes([amf0.REFERENCE]) + struct.pack(">H", 0)
    one, two = decode_values(body)
    assert one is two and one == {"a": 1.0}


def test_typed_object_and_xml_and_unsupported_marker() -> None:
    typed = bytes([amf0.TYPED_OBJECT]) + b"\x00\x03Foo" + b"\x00\x01k" + encode_values("v") + b"\x00\x00\x09"
    xml = bytes([amf0.XML_DOCUMENT]) + struct.pack(">I", 3) + b"<a>"
    assert decode_values(typed + xml + bytes([amf0.UNSUPPORTED])) == [{"k": "v"}, "<a>", UNDEFINED]


def test_ecma_array_without_end_marker_at_the_end_of_the_message() -> None:
    body = bytes([amf0.ECMA_ARRAY]) + struct.pack(">I", 1) + b"\x00\x05width" + encode_values(640.0)
    assert decode_values(body) == [{"width": 640.0}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00\x01\x02", "truncated"),
        (b"\x02\x00\x09abc", "truncated"),
        (b"\x12", "unsupported AMF0 type marker 0x12"),
        (b"\x04", "unsupported AMF0 type marker 0x04"),  # movieclip
        (b"\x09", "object-end marker outside an object"),
        (b"\x07\x00\x05", "reference 5"),
        (b"\x0a\xff\xff\xff\xff\x05", "claims 4294967295 elements"),
        (b"\x03\x00\x01a", "truncated"),
    ],
)
def test_malformed_values_raise_the_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(RtmpProtocolError, match=message):
        decode_values(body)


def test_depth_bomb_is_refused() -> None:
    bomb = b"\x0a\x00\x00\x00\x01" * 10000 + b"\x05"  # 10000 nested strict arrays
    with pytest.raises(RtmpProtocolError, match="nested deeper than 32"):
        decode_values(bomb)
    objects = b"\x03\x00\x01a" * 100 + b"\x05"
    with pytest.raises(RtmpProtocolError, match="nested deeper"):
        decode_values(objects)
    ok = b"\x0a\x00\x00\x00\x01" * 10 + b"\x05"
    assert decode_values(ok, max_depth=10)


def test_amf3_command_message_with_scalars() -> None:
    amf3_string = bytes([amf0.AVMPLUS, 0x06, (5 << 1) | 1]) + b"hello"
    amf3_int = bytes([amf0.AVMPLUS, 0x04, 0x7F])
    amf3_negative = bytes([amf0.AVMPLUS, 0x04, 0xFF, 0xFF, 0xFF, 0xFF])
    amf3_ref = bytes([amf0.AVMPLUS, 0x06, 0x00])  # reference to string 0
    amf3_misc = bytes([amf0.AVMPLUS, 0x00, amf0.AVMPLUS, 0x01, amf0.AVMPLUS, 0x02, amf0.AVMPLUS, 0x03])
    amf3_double = bytes([amf0.AVMPLUS, 0x05]) + struct.pack(">d", 2.5)
    body = b"\x00" + encode_values("publish", 0.0) + amf3_string + amf3_int + amf3_negative + amf3_ref
    body += amf3_misc + amf3_double
    assert decode_amf3_message(body) == ["publish", 0.0, "hello", 127, -1, "hello", UNDEFINED, None, False, True, 2.5]


def test_amf3_objects_and_bad_selector_are_refused_clearly() -> None:
    with pytest.raises(RtmpProtocolError, match="AMF3 value type 0x0a"):
        decode_amf3_message(b"\x00" + bytes([amf0.AVMPLUS, 0x0A, 0x01]))
    with pytest.raises(RtmpProtocolError, match="format selector 3"):
        decode_amf3_message(b"\x03")
    with pytest.raises(RtmpProtocolError, match="string reference 4"):
        decode_amf3_message(b"\x00" + bytes([amf0.AVMPLUS, 0x06, 0x08]))
    assert decode_amf3_message(b"") == []


def test_encoder_refuses_what_amf0_cannot_say() -> None:
    with pytest.raises(TypeError):
        encode_values(object())
    with pytest.raises(ValueError, match="nested deeper"):
        nested: list[object] = []
        cursor = nested
        for _ in range(40):
            cursor.append([])
            cursor = cursor[0]  # type: ignore[assignment]
        encode_values(nested)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode_values(b"\x02\x00\x02\xff\xfe") == ["\ufffd\ufffd"]
