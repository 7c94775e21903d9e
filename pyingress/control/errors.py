"""One error type for everything a client or publisher is refused, carrying LiveKit's code and message.

Codes are Twirp's (protocol.md §1.6); psrpc and HTTP mappings derive from them so that the standalone API,
the psrpc worker and the WHIP endpoint all say the same thing for the same failure.
"""

# Twirp error code -> HTTP status (Twirp Go v8.1.3, as pinned by livekit/protocol).
TWIRP_HTTP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

# Codes psrpc knows but Twirp does not, mapped the way livekit-server maps them through gRPC status.
PSRPC_TO_TWIRP = {
    "malformed_request": "invalid_argument",
    "malformed_result": "internal",
    "not_acceptable": "invalid_argument",
    "data_loss": "dataloss",
    "unprocessable_entity": "invalid_argument",
    "upstream_server_error": "unavailable",
    "upstream_client_error": "invalid_argument",
}

# HTTP status for codes that reach a publisher over HTTP (WHIP): livekit/ingress maps NotAcceptable to 406.
PSRPC_HTTP_STATUS = {**TWIRP_HTTP_STATUS, "not_acceptable": 406, "malformed_request": 400, "data_loss": 500}


class IngressError(Exception):
    """A refusal with LiveKit's code (Twirp/psrpc name) and LiveKit's exact message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"IngressError({self.code!r}, {self.message!r})"

    def __str__(self) -> str:
        return self.message

    @property
    def twirp_code(self) -> str:
        return PSRPC_TO_TWIRP.get(self.code, self.code)

    @property
    def http_status(self) -> int:
        return PSRPC_HTTP_STATUS.get(self.code, 500)


def invalid_ingress(detail: str) -> IngressError:
    return IngressError("invalid_argument", f"invalid ingress: {detail}")


def invalid_video_params(detail: str) -> IngressError:
    return IngressError("invalid_argument", f"invalid video parameters: {detail}")


def invalid_audio_params(detail: str) -> IngressError:
    return IngressError("invalid_argument", f"invalid audio parameters: {detail}")


def invalid_transcoding_bypass(detail: str) -> IngressError:
    return IngressError("invalid_argument", f"invalid transcoding bypass configuration: {detail}")


# Errors with fixed text, named as in livekit/protocol and livekit/ingress (ingress.md §5).
INVALID_INGRESS_TYPE = IngressError("invalid_argument", "invalid ingress type")
INGRESS_DISABLED = IngressError("permission_denied", "session is disabled")
INGRESS_OUT_OF_DATE = IngressError("failed_precondition", "trying to ovewrite an ingress with an older version")
INGRESS_NOT_FOUND = IngressError("not_found", "ingress does not exist")
INGRESS_NON_REUSABLE = IngressError("invalid_argument", "ingress is not reusable and cannot be modified")
INVALID_VIDEO_PRESET = IngressError("invalid_argument", "invalid video encoding preset")
INVALID_AUDIO_PRESET = IngressError("invalid_argument", "invalid audio encoding preset")
MISSING_STREAM_KEY = IngressError("invalid_argument", "missing stream key")
SERVER_CAPACITY_EXCEEDED = IngressError("resource_exhausted", "server capacity exceeded")
SERVER_SHUTTING_DOWN = IngressError("unavailable", "server shutting down")
SOURCE_NOT_READY = IngressError("failed_precondition", "source encoder not ready")
UNSUPPORTED_DECODE_FORMAT = IngressError("not_acceptable", "unsupported format for the source media")
ROOM_DISCONNECTED = IngressError("not_acceptable", "room disconnected")
ROOM_DISCONNECTED_UNEXPECTEDLY = IngressError("unavailable", "room disconnected unexpectedly")
