"""The envelope every psrpc payload on Redis travels in (protocol.md §4.2; psrpc ``internal/bus/serialization.go``).

``internal.Msg{type_url=1, value=2, channel=3}`` — the same bytes as ``google.protobuf.Any`` — around one of
``internal.Request``, ``Response``, ``ClaimRequest`` or ``ClaimResponse``.  A Go reader resolves ``type_url`` and
then asserts it is the type its channel carries, so the name must be exact; we check the same on the way in and
refuse anything else with ``MalformedEnvelope`` (the only exception ``open_envelope`` raises).

The queue lock key is here too: psrpc servers of a queue method race for ``SET <key> <rand> NX`` where the key is
the standard base64 of SHA-256 over the whole published payload (§4.4 step 3; seen byte for byte in the capture).
"""

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from pyingress.control.psrpc import messages
from pyingress.control.psrpc.errors import MalformedEnvelope

M = TypeVar("M", bound=Message)

# How long a server's queue lock lives (psrpc bus_redis.go lockExpiration).
QUEUE_LOCK_SECONDS = 5


@dataclass(frozen=True)
class Publish:
    """Bytes to PUBLISH on a Redis channel."""

    channel: str
    payload: bytes
    request_id: str = ""  # the request it belongs to, so a shell that cannot send it can fail that request


def seal(message: Message) -> bytes:
    """The bytes to PUBLISH for ``message``."""
    return bytes(
        messages.Msg(type_url=messages.type_url(message), value=message.SerializeToString()).SerializeToString()
    )


def open_envelope(payload: bytes, expected: type[M]) -> M:
    """The ``expected`` message inside ``payload``; raises MalformedEnvelope for anything else."""
    try:
        envelope: Any = messages.Msg.FromString(payload)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedEnvelope(f"not a psrpc envelope: {exc}") from None
    want = messages.TYPE_URL_PREFIX + expected.DESCRIPTOR.full_name
    if envelope.type_url != want:
        raise MalformedEnvelope(f"expected {want}, got {envelope.type_url[:120]!r}")
    try:
        return expected.FromString(envelope.value)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedEnvelope(f"undecodable {expected.DESCRIPTOR.full_name}: {exc}") from None


def queue_lock_key(payload: bytes) -> str:
    return base64.b64encode(hashlib.sha256(payload).digest()).decode("ascii")
