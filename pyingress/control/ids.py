"""Identifiers in LiveKit's shapes: a prefix and 12 characters of the shortuuid base57 alphabet.

livekit-server draws ingress ids (``IN_``) and stream keys (no prefix) from this alphabet (protocol.md §1.5);
sessions get ``RT_``/``WH_``/``UR_`` resource ids and webhook events ``EV_`` ids.  Every id comes from the
operating system's CSPRNG: a stream key is a bearer secret.
"""

import secrets

from livekit.protocol.ingress import IngressInput

BASE57_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ID_LENGTH = 12

INGRESS_PREFIX = "IN_"
EVENT_PREFIX = "EV_"
NODE_PREFIX = "NE_"
RESOURCE_PREFIXES: dict[int, str] = {
    IngressInput.RTMP_INPUT: "RT_",
    IngressInput.WHIP_INPUT: "WH_",
    IngressInput.URL_INPUT: "UR_",
}


def random_base57(length: int = ID_LENGTH) -> str:
    return "".join(secrets.choice(BASE57_ALPHABET) for _ in range(length))


def new_ingress_id() -> str:
    return INGRESS_PREFIX + random_base57()


def new_stream_key() -> str:
    return random_base57()


def new_resource_id(input_type: int) -> str:
    """A session id whose prefix names the input kind, as livekit/ingress does (``RT_``, ``WH_``, ``UR_``)."""
    return RESOURCE_PREFIXES[input_type] + random_base57()


def new_event_id() -> str:
    return EVENT_PREFIX + random_base57()


def new_node_id() -> str:
    return NODE_PREFIX + random_base57()


def is_base57_id(value: str, prefix: str = "") -> bool:
    body = value[len(prefix) :] if value.startswith(prefix) else None
    return body is not None and len(body) == ID_LENGTH and all(c in BASE57_ALPHABET for c in body)
