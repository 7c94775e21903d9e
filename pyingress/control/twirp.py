"""Twirp transport for ``livekit.Ingress`` on aiohttp, answering byte for byte as livekit-server v1.13.5 does.

Order of work, as in livekit-server (protocol.md §1.1, §1.6): the auth middleware first (a bad token is a plain-text
401 before anything else), then Twirp routing (POST only, ``<prefix>/livekit.Ingress/<Method>``, content type
``application/json`` or ``application/protobuf``), the body (size-limited), decoding, and the RPC.  Errors are
Twirp JSON ``{"code","msg","meta"}``; LiveKit's own (psrpc) errors reach clients with Twirp's ``twirp error
unknown: `` prefix on the message, exactly as livekit-server's error-details interceptor produces them.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressInfo,
    ListIngressRequest,
    ListIngressResponse,
    UpdateIngressRequest,
)

from pyingress.control.auth import AuthFailure, Grants, authenticate
from pyingress.control.errors import TWIRP_HTTP_STATUS, IngressError
from pyingress.control.protojson import JsonDecodeError, go_json_string, go_quote, parse_request, twirp_json

log = logging.getLogger("pyingress.twirp")

PATH_PREFIX = "/twirp"
SERVICE = "livekit.Ingress"
# Ingress requests are a few kB; the limit only guards memory (livekit-server HEAD uses a limiter too).
MAX_BODY_BYTES = 1 << 20
BODY_TOO_LARGE = "request body too large"
_PSRPC_PREFIX = "twirp error unknown: "


@dataclass(frozen=True)
class TwirpError(Exception):
    """An error Twirp writes itself: the message reaches the client as it is."""

    code: str
    msg: str
    meta: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"

    @property
    def http_status(self) -> int:
        return TWIRP_HTTP_STATUS.get(self.code, 500)

    def body(self) -> bytes:
        # Go encoding/json of Twirp's {code, msg, meta(omitempty)}; meta keys sorted as Go sorts map keys.
        text = '{"code":' + go_json_string(self.code) + ',"msg":' + go_json_string(self.msg)
        if self.meta:
            entries = ",".join(go_json_string(k) + ":" + go_json_string(v) for k, v in sorted(self.meta.items()))
            text += ',"meta":{' + entries + "}"
        return (text + "}").encode()

    @classmethod
    def from_ingress_error(cls, error: IngressError) -> "TwirpError":
        return cls(error.twirp_code, _PSRPC_PREFIX + error.message)


PERMISSION_DENIED = TwirpError("unauthenticated", "permissions denied")


def bad_route(msg: str, method: str, path: str) -> TwirpError:
    return TwirpError("bad_route", msg, {"twirp_invalid_route": f"{method} {path}"})


class IngressRpc(Protocol):
    async def create_ingress(self, request: CreateIngressRequest, grants: Grants | None) -> IngressInfo: ...
    async def update_ingress(self, request: UpdateIngressRequest, grants: Grants | None) -> IngressInfo: ...
    async def list_ingress(self, request: ListIngressRequest, grants: Grants | None) -> ListIngressResponse: ...
    async def delete_ingress(self, request: DeleteIngressRequest, grants: Grants | None) -> IngressInfo: ...


_RPCS: dict[str, tuple[type[Message], str]] = {
    "CreateIngress": (CreateIngressRequest, "create_ingress"),
    "UpdateIngress": (UpdateIngressRequest, "update_ingress"),
    "ListIngress": (ListIngressRequest, "list_ingress"),
    "DeleteIngress": (DeleteIngressRequest, "delete_ingress"),
}


def split_twirp_path(path: str) -> tuple[str, str, str]:
    """(prefix, package.Service, Method) the way Twirp's generated server splits a path."""
    parts = path.split("/")
    if len(parts) < 2:
        return "", "", ""
    return "/".join(parts[:-2]), parts[-2], parts[-1]


def _content_kind(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _cors(request: web.Request, response: web.StreamResponse) -> None:
    # livekit-server allows every origin and relies on tokens; browsers get the same here.
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "*"
        response.headers["Vary"] = "Origin"


class TwirpIngressServer:
    def __init__(self, rpc: IngressRpc, keys: Mapping[str, str], max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.rpc = rpc
        self.keys = keys
        self.max_body_bytes = max_body_bytes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", PATH_PREFIX + "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await self._handle(request)
        _cors(request, response)
        log.debug(
            "%s %s -> %d in %.1f ms", request.method, request.path, response.status, (time.monotonic() - started) * 1e3
        )
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._preflight(request)
        try:
            grants = authenticate(request.headers.get("Authorization"), request.query.get("access_token"), self.keys)
        except AuthFailure as exc:
            return web.Response(status=401, body=exc.message.encode(), content_type="text/plain", charset="utf-8")
        try:
            return await self._route(request, grants)
        except TwirpError as exc:
            return self._error(exc)
        except IngressError as exc:
            return self._error(TwirpError.from_ingress_error(exc))
        except Exception:
            log.exception("Ingress API request %s failed", request.path)
            return self._error(TwirpError("internal", "internal error"))

    def _preflight(self, request: web.Request) -> web.Response:
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "OPTIONS, HEAD, GET, POST, PATCH, DELETE"
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested:
            response.headers["Access-Control-Allow-Headers"] = requested
        response.headers["Access-Control-Max-Age"] = "86400"
        return response

    def _error(self, error: TwirpError) -> web.Response:
        return web.Response(status=error.http_status, body=error.body(), content_type="application/json")

    async def _route(self, request: web.Request, grants: Grants | None) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        if request.method != "POST":
            raise bad_route(
                f"unsupported method {go_quote(request.method)} (only POST is allowed)", request.method, path
            )
        prefix, service, method = split_twirp_path(path)
        if service != SERVICE:
            raise bad_route(f"no handler for path {go_quote(path)}", request.method, path)
        if prefix != PATH_PREFIX:
            msg = f"invalid path prefix {go_quote(prefix)}, expected {go_quote(PATH_PREFIX)}, on path {go_quote(path)}"
            raise bad_route(msg, request.method, path)
        if method not in _RPCS:
            raise bad_route(f"no handler for path {go_quote(path)}", request.method, path)
        request_type, handler_name = _RPCS[method]
        content_type = request.headers.get("Content-Type", "")
        kind = _content_kind(content_type)
        if kind not in ("application/json", "application/protobuf"):
            raise bad_route(f"unexpected Content-Type: {go_quote(content_type)}", request.method, path)
        declared = request.content_length
        if declared is not None and declared > self.max_body_bytes:
            return web.Response(status=413, body=BODY_TOO_LARGE.encode(), content_type="text/plain", charset="utf-8")
        body = await self._read_body(request)
        message = request_type()
        if kind == "application/json":
            if body is None:
                raise TwirpError("malformed", "the json request could not be decoded")
            try:
                parse_request(body, message)
            except JsonDecodeError:
                raise TwirpError("malformed", "the json request could not be decoded") from None
        else:
            if body is None:
                raise TwirpError("malformed", "failed to read request body")
            try:
                message.ParseFromString(body)
            except DecodeError:
                raise TwirpError("malformed", "the protobuf request could not be decoded") from None
        handler: Callable[[Any, Grants | None], Awaitable[Message]] = getattr(self.rpc, handler_name)
        result = await handler(message, grants)
        if kind == "application/json":
            return web.Response(body=twirp_json(result), content_type="application/json")
        return web.Response(body=result.SerializeToString(), content_type="application/protobuf")

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None when it grows past the limit (a chunked body can't be refused up front)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
