"""psrpc's error: a code string from a fixed set and a message, as carried in ``internal.Response`` (§4.4)."""

OK = ""
CANCELED = "canceled"
MALFORMED_REQUEST = "malformed_request"
MALFORMED_RESULT = "malformed_result"
DEADLINE_EXCEEDED = "deadline_exceeded"
UNAVAILABLE = "unavailable"
UNKNOWN = "unknown"
INVALID_ARGUMENT = "invalid_argument"
NOT_FOUND = "not_found"
INTERNAL = "internal"
UNIMPLEMENTED = "unimplemented"

CODES = frozenset(
    {
        OK,
        CANCELED,
        MALFORMED_REQUEST,
        MALFORMED_RESULT,
        DEADLINE_EXCEEDED,
        UNAVAILABLE,
        UNKNOWN,
        INVALID_ARGUMENT,
        NOT_FOUND,
        "not_acceptable",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        UNIMPLEMENTED,
        INTERNAL,
        "data_loss",
        "unauthenticated",
        "unprocessable_entity",
        "upstream_server_error",
        "upstream_client_error",
    }
)


class PsrpcError(Exception):
    """A failed RPC: ``code`` is psrpc's (``unavailable``, ``not_found`` …), ``message`` the peer's text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"PsrpcError({self.code!r}, {self.message!r})"

    @property
    def transient(self) -> bool:
        """Worth another try later: nobody answered in time (livekit-server retries exactly these, §4.4)."""
        return self.code in (UNAVAILABLE, DEADLINE_EXCEEDED)


class MalformedEnvelope(PsrpcError):
    """Bytes from the bus that are not the psrpc message the channel carries; the peer would drop them too."""

    def __init__(self, message: str) -> None:
        super().__init__(MALFORMED_REQUEST, message)


# What a psrpc client says when it gives up (psrpc v0.7.2 errors.go).
def no_response() -> PsrpcError:
    return PsrpcError(UNAVAILABLE, "no response from servers")


def no_servers_available(claims: int) -> PsrpcError:
    return PsrpcError(UNAVAILABLE, f"no servers available (received {claims} responses)")


def timed_out() -> PsrpcError:
    return PsrpcError(DEADLINE_EXCEEDED, "request timed out")
