"""JSON the way LiveKit's Go services write it, so byte-level consumers see what livekit-server sends.

Two encodings are in use (protocol.md §1.1, §3.2):

- Twirp responses: proto field names, every unpopulated field emitted (scalars at their default, lists ``[]``,
  maps ``{}``, unset messages ``null``), unset oneof members and proto3 ``optional`` fields left out.
- Webhook bodies: lowerCamel names, unpopulated fields omitted.

Both follow Go protojson: fields in declaration order (not field-number order, which is what
``google.protobuf.json_format`` uses), int64 as strings, enums as names, doubles in shortest form (``30`` not
``30.0``).  Requests are parsed with ``json_format`` (it accepts both names and enum names or numbers, like Go).
Also here: Go's ``%q`` and ``encoding/json`` string quoting, for Twirp error bodies that must match byte for byte.
"""

import base64
import decimal
import json
import math
import struct
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_INT64_TYPES = (
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
)
_FLOAT_TYPES = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


# The upb runtime hands out its own descriptor classes, which the stubs type apart from the Python ones.
Field = Any
MessageDescriptor = Any


class JsonDecodeError(ValueError):
    """The body is not one JSON value protojson can read into the request message."""


def _shortest(value: float, single: bool) -> str:
    if not single:
        return repr(value)
    # float32 fields print with the fewest digits that read back as the same float32, as Go does (bitSize 32).
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("<f", float(text)) == packed:
            return text
    return repr(value)


def _go_float(value: float, single: bool = False) -> str:
    # Go protojson: NaN/Infinity as strings, otherwise the shortest representation that round-trips, in plain
    # notation for magnitudes in [1e-6, 1e21) — 30 prints as "30", 29.97 as "29.97" — else like "1e+21", "1e-7".
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    exact = decimal.Decimal(_shortest(value, single))
    if 1e-6 <= abs(value) < 1e21:
        plain = format(exact, "f")
        return plain.rstrip("0").rstrip(".") if "." in plain else plain
    sign, digits, exponent = exact.normalize().as_tuple()
    text = "".join(map(str, digits))
    power = int(exponent) + len(text) - 1
    mantissa = ("-" if sign else "") + text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{mantissa}e+{power:02d}" if power >= 0 else f"{mantissa}e-{-power}"


def protojson_string(text: str) -> str:
    """A JSON string as Go protojson writes it: only quote, backslash, control characters and DEL escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\u{code:04x}"))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_json_string(text: str) -> str:
    """A JSON string as Go ``encoding/json`` writes it (HTML-safe): Twirp's error bodies are made this way."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif char in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x20 or char in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate is invalid UTF-8 in Go: replaced
            out.append("\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_quote(text: str) -> str:
    """Go's ``%q`` / ``strconv.Quote`` for the strings Twirp puts into its messages (paths, content types)."""
    out = ['"']
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for char in text:
        code = ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif char in escapes:
            out.append(escapes[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _scalar(field: Field, value: Any) -> str:
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if kind == FieldDescriptor.TYPE_STRING:
        return protojson_string(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return '"' + base64.b64encode(value).decode("ascii") + '"'
    if kind == FieldDescriptor.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return protojson_string(named.name) if named is not None else str(value)
    if kind in _INT64_TYPES:
        return f'"{value}"'
    if kind in _FLOAT_TYPES:
        return _go_float(float(value), single=kind == FieldDescriptor.TYPE_FLOAT)
    return str(int(value))


def _is_message(field: Field) -> bool:
    return field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)


def _is_map(field: Field) -> bool:
    return _is_message(field) and field.message_type.GetOptions().map_entry


def _field_name(field: Field, proto_names: bool) -> str:
    return field.name if proto_names else field.json_name


def _value(field: Field, value: Any, proto_names: bool, emit_unpopulated: bool) -> str:
    if _is_message(field):
        return _message(value, proto_names, emit_unpopulated)
    return _scalar(field, value)


def _map_key(key_field: Field, key: Any) -> str:
    if key_field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if key else "false"
    return str(key)


def _map(field: Field, mapping: Any, proto_names: bool, emit_unpopulated: bool) -> str:
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    # Go sorts map keys: numerically for integer keys, lexically for strings.
    keys = sorted(mapping.keys())
    items = [
        protojson_string(_map_key(key_field, key))
        + ":"
        + _value(value_field, mapping[key], proto_names, emit_unpopulated)
        for key in keys
    ]
    return "{" + ",".join(items) + "}"


def _is_well_known(descriptor: MessageDescriptor) -> bool:
    return descriptor.file.package == "google.protobuf"


def _message(message: Message, proto_names: bool, emit_unpopulated: bool) -> str:
    descriptor = message.DESCRIPTOR
    if _is_well_known(descriptor):
        # Timestamps, durations, structs … have their own JSON forms; json_format writes them as Go does.
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":"), ensure_ascii=False)
    parts: list[str] = []
    for field in descriptor.fields:
        name = protojson_string(_field_name(field, proto_names))
        if field.is_repeated:
            values = getattr(message, field.name)
            if not values and not emit_unpopulated:
                continue
            if _is_map(field):
                parts.append(f"{name}:{_map(field, values, proto_names, emit_unpopulated)}")
            else:
                items = ",".join(_value(field, item, proto_names, emit_unpopulated) for item in values)
                parts.append(f"{name}:[{items}]")
            continue
        if field.has_presence:
            if message.HasField(field.name):
                parts.append(f"{name}:{_value(field, getattr(message, field.name), proto_names, emit_unpopulated)}")
            elif emit_unpopulated and field.containing_oneof is None and _is_message(field):
                parts.append(f"{name}:null")
            continue
        value = getattr(message, field.name)
        if value or emit_unpopulated:
            parts.append(f"{name}:{_scalar(field, value)}")
    return "{" + ",".join(parts) + "}"


def twirp_json(message: Message) -> bytes:
    """A Twirp JSON response body exactly as livekit-server writes it."""
    return _message(message, proto_names=True, emit_unpopulated=True).encode()


def webhook_json(message: Message) -> bytes:
    """A webhook body as LiveKit's notifier writes it (protojson defaults)."""
    return _message(message, proto_names=False, emit_unpopulated=False).encode()


def to_json(message: Message, *, proto_names: bool = True, emit_unpopulated: bool = True) -> str:
    return _message(message, proto_names=proto_names, emit_unpopulated=emit_unpopulated)


def _no_constants(name: str) -> Any:
    # Python reads NaN/Infinity literals; JSON (and Go) does not.  protojson takes them as strings: "NaN".
    raise ValueError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_no_constants)


def parse_request(body: bytes, message: Message) -> None:
    """Read a Twirp JSON request the way the Go server does.

    Go decodes the *first* JSON value of the body (trailing bytes are ignored), then protojson-unmarshals it with
    unknown fields discarded.  Raises JsonDecodeError for anything that fails either step.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonDecodeError("body is not UTF-8") from None
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        value, end = _STRICT_JSON.raw_decode(text, start)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise JsonDecodeError(str(exc)) from None
    if not isinstance(value, dict):
        raise JsonDecodeError("a request is a JSON object")
    try:
        json_format.Parse(text[start:end], message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise JsonDecodeError(str(exc)) from None
