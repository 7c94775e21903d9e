"""psrpc's Redis channel names and ids (protocol.md §4.2, §4.3; psrpc v0.7.2 ``pkg/info/channels.go``).

A channel joins its parts with ``|``; a part that comes out empty adds no separator of its own, but the separator
before it stays (so ``("S", "M", [], "REQ")`` is ``S|M|REQ`` and ``("a", "")`` is ``a|``); a list of parts (the
topic) is joined the same way inside its slot.  Characters outside ``[0-9A-Za-z_]`` are escaped as ``u+hhhh``
below U+10000 and ``U+hhhhhhhh`` above.  These quirks matter only for odd topics — ingress topics are ``IN_…``
and resource ids — but a channel must match the Go peer's byte for byte or the two never meet.
"""

import secrets
from collections.abc import Sequence

Part = str | Sequence[str]

# psrpc pkg/rand: a prefix and 12 characters of this alphabet.
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ID_LENGTH = 12


def _plain(ch: str) -> bool:
    return ch == "_" or ("0" <= ch <= "9") or ("A" <= ch <= "Z") or ("a" <= ch <= "z")


def sanitize(part: str) -> str:
    out = []
    for ch in part:
        if _plain(ch):
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"u+{ord(ch):04x}")
        else:
            out.append(f"U+{ord(ch):08x}")
    return "".join(out)


def _join(parts: Sequence[Part], delim: str) -> str:
    buf = ""
    prefix = False
    for part in parts:
        if prefix:
            buf += delim
        before = len(buf)
        buf += sanitize(part) if isinstance(part, str) else _join(part, delim)
        prefix = len(buf) > before
    return buf


def format_channel(*parts: Part, delim: str = "|") -> str:
    return _join(parts, delim)


def request_channel(service: str, method: str, topic: Sequence[str] = ()) -> str:
    """Where a client publishes a Request and servers of (method, topic) listen."""
    return format_channel(service, method, topic, "REQ")


def claim_response_channel(service: str, method: str, topic: Sequence[str] = ()) -> str:
    """Where the client names the server it picked (ClaimResponse); the claiming servers listen."""
    return format_channel(service, method, topic, "RCLAIM")


def response_channel(service: str, client_id: str) -> str:
    """Where servers answer a client (Response)."""
    return format_channel(service, client_id, "RES")


def claim_request_channel(service: str, client_id: str) -> str:
    """Where servers bid for a client's request (ClaimRequest)."""
    return format_channel(service, client_id, "CLAIM")


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def new_client_id() -> str:
    return new_id("CLI_")


def new_server_id() -> str:
    return new_id("SRV_")


def new_request_id() -> str:
    return new_id("REQ_")
