"""Request files for ``pyingress ingress create|update``: protojson, read with errors a person can act on.

The files are LiveKit's (``lk ingress create ingress.json``): snake_case or camelCase names, enums by name or
number.  What goes wrong in them is told where it is: a JSON syntax error by line and column with the line shown
and a hint for the usual slips (the docs' first ingress.json misses a comma), an unknown field with the closest
real name, an enum value with the names it could be.
"""

import difflib
import json
import re
import sys
from typing import TextIO, TypeVar

from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message


class RequestFileError(Exception):
    pass


M = TypeVar("M", bound=Message)

_ENUM = re.compile(r"Invalid enum value (.*) for enum type ([\w.]+) at ([\w.\[\]]+?)\.?$", re.S)
_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)" at "([\w.\[\]]*)"')


def read_request(path: str, message: M, stdin: TextIO | None = None) -> M:
    """A request message from a protojson file, or from stdin for ``-``; RequestFileError says what is wrong."""
    try:
        text = (stdin or sys.stdin).read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise RequestFileError(f"cannot read {path}: {exc.strerror}") from None
    name = "stdin" if path == "-" else path
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestFileError(json_error(name, text, exc)) from None
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__
        raise RequestFileError(f"{name}: expected a JSON object (a {message.DESCRIPTOR.name}), not a {kind}")
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as exc:
        raise RequestFileError(f"{name}: {parse_error(str(exc))}") from None
    return message


def json_error(name: str, text: str, exc: json.JSONDecodeError) -> str:
    """``file:line:column: not valid JSON: <what>`` with the line(s) around it and a caret."""
    lines = text.splitlines() or [""]
    hint = ""
    before = text[: exc.pos].rstrip()
    if exc.msg == "Expecting ',' delimiter" and "\n" in text[len(before) : exc.pos]:
        # The next item starts on a new line: the comma that should end the line above is missing.
        hint = f": is a comma missing at the end of line {before.count(chr(10)) + 1}?"
    elif exc.msg.startswith("Expecting property name") and before.endswith(","):
        hint = ": a comma before a closing brace is not allowed in JSON"
    elif exc.msg.startswith("Expecting property name"):
        hint = ": names need double quotes"
    shown = []
    for number in range(max(1, exc.lineno - 1), min(len(lines), exc.lineno) + 1):
        shown.append(f"  {number:>4} | {lines[number - 1]}")
    shown.append(f"  {'':>4} | {' ' * (exc.colno - 1)}^")
    return f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}{hint}\n" + "\n".join(shown)


def parse_error(message: str) -> str:
    """json_format's message, made to say where (a dotted field path) and what would have been right."""
    enum = _ENUM.search(message)
    if enum is not None:
        value, enum_name, where = enum.groups()
        names = _enum_names(enum_name)
        choices = f"; one of: {', '.join(names)}" if names else ""
        return f"{_path(where)}: {value!r} is not a {enum_name.rsplit('.', 1)[-1]}{choices}"
    field = _FIELD.search(message)
    if field is not None:
        type_name, unknown, _ = field.groups()
        first_line = message.split("\n", 1)[0].rstrip(".")
        close = difflib.get_close_matches(unknown, _field_names(type_name), n=1)
        return first_line + (f' (did you mean "{close[0]}"?)' if close else "")
    return message


def _path(where: str) -> str:
    # "CreateIngressRequest.video.options.video_codec" → "video.options.video_codec"
    where = where.rstrip(".")
    return where.split(".", 1)[1] if "." in where else where


def _enum_names(full_name: str) -> list[str]:
    try:
        enum = descriptor_pool.Default().FindEnumTypeByName(full_name)
    except KeyError:
        return []
    return [value.name for value in enum.values]


def _field_names(full_name: str) -> list[str]:
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return []
    return [name for field in descriptor.fields for name in (field.name, field.json_name)]
