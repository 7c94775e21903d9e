"""What a WHIP publisher is refused with: livekit/ingress's words and statuses (reference ingress.md §1.5, §5).

Admission refusals (unknown key, ``session is disabled``, ``invalid ingress type``, ``server capacity exceeded``)
come from the control plane and the session manager as they do for RTMP; these are the WHIP endpoint's own.
"""

from pyingress.control.errors import IngressError

DUPLICATE_TRACK = IngressError("not_acceptable", "more than 1 track with given media kind")
INVALID_SIMULCAST = IngressError("not_acceptable", "invalid simulcast configuration")
WHIP_RESOURCE_NOT_FOUND = IngressError("not_found", "ingress not found")
INVALID_RESTART_REQUEST = IngressError("invalid_argument", "whip restart request was invalid")
# livekit/ingress answers 503 here (a psrpc DeadlineExceeded it maps so); "unavailable" is our code for 503.
ICE_GATHERING_TIMEOUT = IngressError("unavailable", "timed out while waiting for ICE candidate gathering")

# PATCH (RFC 9725 §4.3): livekit/ingress answers 422 with these words; only ``If-Match: *`` (an ICE restart) is
# understood, and only in pass-through.
TRICKLE_NOT_SUPPORTED = "Trickle-ICE not supported"
RESTART_NOT_SUPPORTED = "Trickle-ICE and ICE restart not supported"


def invalid_offer(detail: str) -> IngressError:
    """An offer that is not an SDP we can answer at all.  livekit/ingress answers Pion's parse error with a bare 500;
    a 400 that says what is wrong serves the publisher better."""
    return IngressError("invalid_argument", f"invalid SDP offer: {detail}")
