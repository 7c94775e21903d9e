"""The psrpc lines of a real capture: livekit-server v1.13.5 and livekit/ingress on one Redis (`redis-cli monitor`).

``corpus/capture-ingress.txt`` holds the lines of ../shared/reference/psrpc-capture.txt that touch the ingress
services (IOInfo, IngressInternal, IngressHandler) and the queue locks.  Redis prints binary the way ``sdscatrepr``
does: ``\\xNN``, ``\\n``, ``\\r``, ``\\t``, ``\\a``, ``\\b``, ``\\"`` and ``\\\\``.
"""

import re
from dataclasses import dataclass
from pathlib import Path

CAPTURE = Path(__file__).with_name("corpus") / "capture-ingress.txt"

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}
_LINE = re.compile(r"^(?P<time>[\d.]+) \[\d+ (?P<peer>[^\]]+)\] (?P<args>.*)$")


@dataclass(frozen=True)
class Command:
    time: float
    peer: str
    args: list[bytes]

    @property
    def name(self) -> str:
        return self.args[0].decode().lower()


def _unquote(text: str) -> list[bytes]:
    """Parse the quoted arguments of one monitor line."""
    args: list[bytes] = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        assert text[i] == '"', text[i:]
        i += 1
        out = bytearray()
        while text[i] != '"':
            if text[i] == "\\":
                nxt = text[i + 1]
                if nxt == "x":
                    out.append(int(text[i + 2 : i + 4], 16))
                    i += 4
                else:
                    out += _ESCAPES[nxt]
                    i += 2
            else:
                out += text[i].encode("latin-1")
                i += 1
        args.append(bytes(out))
        i += 1
    return args


def commands() -> list[Command]:
    found = []
    for line in CAPTURE.read_text(encoding="latin-1").splitlines():
        match = _LINE.match(line)
        assert match, line
        found.append(Command(float(match["time"]), match["peer"], _unquote(match["args"])))
    return found


def publishes() -> list[tuple[str, bytes]]:
    """(channel, payload) of every PUBLISH, in order."""
    return [(c.args[1].decode(), c.args[2]) for c in commands() if c.name == "publish"]
