"""The four Ingress RPCs with livekit-server's semantics (pkg/service/ingress.go; protocol.md §1.5, ingress.md §3).

Transport-free: requests and responses are protobuf messages, refusals are ``IngressError`` (LiveKit's psrpc-style
errors) or ``TwirpError`` (errors Twirp itself writes, such as "permissions denied").  The order of checks is the
server's, because it decides which error a bad request sees: CreateIngress checks the input type *before*
permissions, the other RPCs check permissions first.
"""

import asyncio
import logging
import re
import sqlite3
import string
import urllib.parse

from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
    ListIngressResponse,
    UpdateIngressRequest,
)

from pyingress.control.auth import Grants
from pyingress.control.errors import INGRESS_NON_REUSABLE, INVALID_INGRESS_TYPE, IngressError, invalid_ingress
from pyingress.control.ids import new_ingress_id, new_stream_key
from pyingress.control.protojson import go_quote
from pyingress.control.state import (
    IngressChanges,
    IngressControl,
    SessionRegistry,
    UrlSessionStarter,
    is_active_status,
)
from pyingress.control.store import IngressStore
from pyingress.control.transcoding import apply_transcoding_default
from pyingress.control.twirp import PERMISSION_DENIED
from pyingress.control.validation import validate, validate_for_serialization

log = logging.getLogger("pyingress.api")

_URL_SCHEMES = ("http", "https", "srt")
# Characters Go's url.URL.EscapedPath keeps as they are; anything else in a path is percent-encoded.
_PATH_SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%[]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _go_url_error(url: str, reason: str) -> IngressError:
    return IngressError("invalid_argument", f"parse {go_quote(url)}: {reason}")


def _check_port(url: str, netloc: str) -> None:
    hostport = netloc.rsplit("@", 1)[-1]
    tail = hostport.rsplit("]", 1)[-1] if hostport.startswith("[") else hostport
    if ":" in tail:
        port = tail.rsplit(":", 1)[1]
        if not port.isdigit() and port:
            raise _go_url_error(url, f'invalid port ":{port}" after host')


def sanitize_pull_url(url: str) -> str:
    """Parse a URL_INPUT source as Go's url.Parse would, refuse other schemes, and re-serialise it."""
    if _CONTROL.search(url):
        raise _go_url_error(url, "net/url: invalid control character in URL")
    if url.startswith(":"):
        raise _go_url_error(url, "missing protocol scheme")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # The only thing urlsplit refuses is an unbalanced IPv6 bracket.
        raise _go_url_error(url, "missing ']' in host") from None
    _check_port(url, parts.netloc)
    if parts.scheme not in _URL_SCHEMES:
        raise invalid_ingress(f"invalid url scheme {parts.scheme}")
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _require_admin(grants: Grants | None) -> None:
    if grants is None or not grants.ingress_admin:
        raise PERMISSION_DENIED


def apply_update(request: UpdateIngressRequest, info: IngressInfo) -> None:
    """Only fields that are set overwrite; input type, URL and stream key never change."""
    for name in ("name", "room_name", "participant_identity", "participant_name", "participant_metadata"):
        value = getattr(request, name)
        if value:
            setattr(info, name, value)
    if request.HasField("enable_transcoding"):
        info.enable_transcoding = request.enable_transcoding
    if request.HasField("audio"):
        info.audio.CopyFrom(request.audio)
    if request.HasField("video"):
        info.video.CopyFrom(request.video)
    if request.HasField("enabled"):
        info.enabled = request.enabled
    validate_for_serialization(info)
    apply_transcoding_default(info)


def build_ingress_info(request: CreateIngressRequest, base_url: str) -> IngressInfo:
    """A new, validated IngressInfo for a create request (ids drawn, transcoding defaults applied)."""
    is_url = request.input_type == IngressInput.URL_INPUT
    url = base_url
    if is_url:
        if not request.url:
            raise invalid_ingress("missing URL parameter")
        url = sanitize_pull_url(request.url)
    # bypass_transcoding of the request is not copied, as in livekit-server: enable_transcoding decides.
    info = IngressInfo(
        ingress_id=new_ingress_id(),
        name=request.name,
        stream_key="" if is_url else new_stream_key(),
        url=url,
        input_type=request.input_type,
        room_name=request.room_name,
        participant_identity=request.participant_identity,
        participant_name=request.participant_name,
        participant_metadata=request.participant_metadata,
        reusable=not is_url,
        state=IngressState(),
    )
    if request.HasField("audio"):
        info.audio.CopyFrom(request.audio)
    if request.HasField("video"):
        info.video.CopyFrom(request.video)
    if request.HasField("enable_transcoding"):
        info.enable_transcoding = request.enable_transcoding
    if request.HasField("enabled"):
        info.enabled = request.enabled
    if is_url:
        validate(info)
    else:
        validate_for_serialization(info)
    apply_transcoding_default(info)
    return info


class IngressApi:
    """CreateIngress, UpdateIngress, ListIngress and DeleteIngress over the standalone store."""

    def __init__(
        self,
        store: IngressStore,
        control: IngressControl,
        sessions: SessionRegistry,
        rtmp_base_url: str,
        whip_base_url: str,
        url_session_starter: UrlSessionStarter | None = None,
        changes: IngressChanges | None = None,
    ) -> None:
        self.store = store
        self.control = control
        self.sessions = sessions
        self.rtmp_base_url = rtmp_base_url
        self.whip_base_url = whip_base_url
        # None until the URL puller exists: URL ingresses are then stored and stay INACTIVE.
        self.url_session_starter = url_session_starter
        # Told of creates, updates and deletes (state changes are told by the control plane that stores them).
        self.changes = changes or IngressChanges()

    def push_base_url(self, input_type: int) -> str:
        """The URL an ingress of this type gets (URL ingresses get their source); refuses unknown types."""
        if input_type == IngressInput.RTMP_INPUT:
            return self.rtmp_base_url
        if input_type == IngressInput.WHIP_INPUT:
            return self.whip_base_url
        if input_type == IngressInput.URL_INPUT:
            return ""
        raise INVALID_INGRESS_TYPE

    async def create_ingress(self, request: CreateIngressRequest, grants: Grants | None) -> IngressInfo:
        url = self.push_base_url(request.input_type)
        _require_admin(grants)
        info = build_ingress_info(request, url)
        is_url = info.input_type == IngressInput.URL_INPUT
        await self._store_new(info)
        self.changes.changed(info.ingress_id, info)
        log.info(
            "created ingress %s (%s) for room %r as %r",
            info.ingress_id,
            IngressInput.Name(info.input_type),
            info.room_name,
            info.participant_identity,
        )
        if is_url and self.url_session_starter is not None:
            try:
                await self.url_session_starter(info)
            except IngressError:
                # Nothing was started: leave no record behind, as livekit-server does when no worker takes it.
                await asyncio.to_thread(self.store.delete, info.ingress_id)
                self.changes.changed(info.ingress_id, None)
                raise
            return await self.control.get_ingress_info(ingress_id=info.ingress_id)
        return info

    async def _store_new(self, info: IngressInfo) -> None:
        for _ in range(3):
            try:
                await asyncio.to_thread(self.store.create, info)
                return
            except sqlite3.IntegrityError:
                # A 12-character base57 collision: draw again.
                info.ingress_id = new_ingress_id()
                if info.stream_key:
                    info.stream_key = new_stream_key()
        raise IngressError("internal", "could not allocate an ingress id")

    async def update_ingress(self, request: UpdateIngressRequest, grants: Grants | None) -> IngressInfo:
        _require_admin(grants)
        info = await asyncio.to_thread(self.store.load, request.ingress_id)
        if not info.reusable:
            raise INGRESS_NON_REUSABLE
        if info.state.status == IngressState.Status.ENDPOINT_ERROR:
            # An errored ingress is reset before the edit, through the state path (so ingress_ended is sent).
            info.state.status = IngressState.Status.ENDPOINT_INACTIVE
            try:
                await self.control.update_state(info.ingress_id, info.state)
            except IngressError as exc:
                log.warning("could not reset the state of %s: %s", info.ingress_id, exc)
        apply_update(request, info)
        await asyncio.to_thread(self.store.update_info, info)
        self.changes.changed(info.ingress_id, info)
        log.info("updated ingress %s", info.ingress_id)
        if is_active_status(info.state.status) or self.sessions.is_active(info.ingress_id):
            # The live session ends; the encoder reconnects and picks the new settings up.
            stopped = await self.sessions.stop(info.ingress_id)
            log.info("ended %d active session(s) of %s to apply the update", stopped, info.ingress_id)
        return info

    async def list_ingress(self, request: ListIngressRequest, grants: Grants | None) -> ListIngressResponse:
        _require_admin(grants)
        if request.ingress_id:
            items = [await asyncio.to_thread(self.store.load, request.ingress_id)]
        else:
            items = await asyncio.to_thread(self.store.list, request.room_name)
        return ListIngressResponse(items=items)

    async def delete_ingress(self, request: DeleteIngressRequest, grants: Grants | None) -> IngressInfo:
        _require_admin(grants)
        info = await asyncio.to_thread(self.store.load, request.ingress_id)
        if is_active_status(info.state.status) or self.sessions.is_active(info.ingress_id):
            await self.sessions.stop(info.ingress_id)
        info = await asyncio.to_thread(self.store.delete, request.ingress_id)
        self.changes.changed(info.ingress_id, None)
        log.info("deleted ingress %s", info.ingress_id)
        info.state.status = IngressState.Status.ENDPOINT_INACTIVE
        return info
