"""The dashboard: a page at ``/`` of the HTTP listener and its JSON and SSE endpoints under ``/dashboard/``.

Every action goes through the Ingress API's own authorisation: the logged-in session's API key signs a short-lived
access token with the ``ingressAdmin`` grant, the token is verified like any Twirp request's, and the
``IngressApi`` call receives the grants that verification produced — so the page can do exactly what a
``livekit-api`` client holding that key can, and nothing the API would refuse.

Routes (state-changing ones need same-origin JSON with the session's CSRF token, see ``login.py``):

    GET  /                                       the page (login form or dashboard)
    GET  /dashboard/static/{name}                its script and style
    GET  /dashboard/vendor/livekit-client.umd.js livekit-client, from npm at set-up
    GET  /dashboard/api/session                  who is logged in, the CSRF token, what the form offers (401: nobody)
    POST /dashboard/api/login, /logout
    GET  /dashboard/api/events                   SSE: a snapshot, then ``ingress`` and ``stats`` events
    POST /dashboard/api/ingresses                create
    POST /dashboard/api/ingresses/{id}/update    enable/disable, rename
    POST /dashboard/api/ingresses/{id}/delete
    POST /dashboard/api/ingresses/{id}/preview   a viewer token for the ingress's room (subscribe only, minutes)
"""

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from livekit.api import AccessToken, ListParticipantsRequest, LiveKitAPI, VideoGrants
from livekit.protocol.ingress import (
    DeleteIngressRequest,
    IngressAudioEncodingPreset,
    IngressInfo,
    IngressVideoEncodingPreset,
    ListIngressRequest,
    ListIngressResponse,
    UpdateIngressRequest,
)

from pyingress.config import Config
from pyingress.control.api import IngressApi
from pyingress.control.auth import AuthFailure, Grants, verify_token
from pyingress.control.errors import IngressError
from pyingress.control.state import IngressChanges
from pyingress.control.twirp import TwirpError
from pyingress.web import assets
from pyingress.web.forms import INPUTS, create_request
from pyingress.web.live import LiveFeed, sse_event
from pyingress.web.login import DashboardLogins, Login, Refused, clear_cookie, is_loopback_host, set_cookie
from pyingress.web.stats import RunningSession, SessionSampler, session_stats
from pyingress.web.viewer import IDENTITY_PREFIX as PREVIEW_PREFIX
from pyingress.web.viewer import PREVIEW_TTL, preview_token
from pyingress.web.views import ingress_view

log = logging.getLogger("pyingress.web")

API = "/dashboard/api"
STATS_INTERVAL_S = 2.0
ADMIN_TOKEN_TTL = datetime.timedelta(seconds=60)
_MAX_BODY = 64 * 1024


class RoomTarget(Protocol):
    @property
    def ws_url(self) -> str: ...


class DashboardSessions(Protocol):
    """What the dashboard reads of the session manager."""

    def running_sessions(self) -> Sequence[RunningSession]: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def room_url_for(ws_url: str, page_host: str) -> str:
    """The room server as the page's browser reaches it: a loopback ``ws_url`` (the local dev room server), seen
    from another machine, is the same port on the host the page came from."""
    parts = urlsplit(ws_url)
    if not is_loopback_host(parts.netloc) or is_loopback_host(page_host):
        return ws_url
    host = urlsplit(f"//{page_host}").hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class Dashboard:
    """A service part (start/close/add_routes/addresses), built by the composition in standalone mode."""

    def __init__(
        self,
        config: Config,
        api: IngressApi,
        changes: IngressChanges,
        sessions: DashboardSessions,
        room: RoomTarget,
        door_addresses: Sequence[tuple[str, str]],
    ) -> None:
        self.config = config
        self.api = api
        self.changes = changes
        self.sessions = sessions
        self.room = room
        self.door_addresses = list(door_addresses)
        keys = {config.api_key: config.api_secret} if config.api_key else {}
        self.logins = DashboardLogins(keys, dev_loopback=config.development)
        self.feed = LiveFeed()
        self._unsubscribe: Callable[[], None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.sampler = SessionSampler()
        self._last_stats: dict[str, dict[str, Any]] = {}  # resource id → its newest figures
        self._rooms: LiveKitAPI | None = None  # the room server's API, for the viewer counts

    # -- service part --------------------------------------------------------------------------------------------

    def addresses(self) -> list[tuple[str, str]]:
        return [("dashboard", f"http://{self.config.public_host}:{self.config.whip_port}/")]

    async def start(self) -> None:
        self._unsubscribe = self.changes.subscribe(self._on_change)
        self._stats_task = asyncio.create_task(self._push_stats(), name="dashboard-stats")

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        self.feed.close()  # open pages' streams end, so the listener can close without waiting for them
        if self._rooms is not None:
            await self._rooms.aclose()

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/", self._index)
        router.add_get("/dashboard/static/{name}", self._static)
        router.add_get(f"/dashboard/vendor/{assets.BUNDLE_NAME}", self._bundle)
        router.add_get(f"{API}/session", self._session)
        router.add_post(f"{API}/login", self._login)
        router.add_post(f"{API}/logout", self._wrap(self._logout, changes_state=True))
        router.add_get(f"{API}/events", self._wrap(self._events, changes_state=False))
        router.add_post(f"{API}/ingresses", self._wrap(self._create, changes_state=True))
        router.add_post(f"{API}/ingresses/{{ingress_id}}/update", self._wrap(self._update, changes_state=True))
        router.add_post(f"{API}/ingresses/{{ingress_id}}/delete", self._wrap(self._delete, changes_state=True))
        router.add_post(f"{API}/ingresses/{{ingress_id}}/preview", self._wrap(self._preview, changes_state=True))
        # No CORS here: a preflight is refused outright, so a browser never sends another site's JSON request
        # (the WHIP door's permissive OPTIONS routes would otherwise answer for these paths).
        router.add_route("OPTIONS", f"{API}/{{tail:.*}}", self._no_cors)

    async def _no_cors(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text="cross-origin requests are not allowed")

    # -- the page ------------------------------------------------------------------------------------------------

    def _security_headers(self, request: web.Request) -> dict[str, str]:
        # The page loads only our own files; it may talk to us, to the room server the preview joins, and to the
        # WHIP endpoint "go live" publishes to (whip_base_url may name another host than the page's).
        room = _origin(room_url_for(self.room.ws_url, request.host))
        room_http = room.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        whip = _origin(self.config.default_whip_base_url)
        return {
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                f"media-src 'self' blob:; connect-src 'self' {room} {room_http} {whip}; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            ),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=assets.index_html(),
            content_type="text/html",
            charset="utf-8",
            headers=self._security_headers(request),
        )

    async def _static(self, request: web.Request) -> web.StreamResponse:
        found = assets.static_file(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        path, content_type = found
        return web.FileResponse(path, headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff"})

    async def _bundle(self, request: web.Request) -> web.StreamResponse:
        path = assets.livekit_client_bundle()
        if path is None:
            return web.Response(status=404, text=assets.MISSING_BUNDLE)
        return web.FileResponse(path, headers={"Content-Type": "text/javascript", "X-Content-Type-Options": "nosniff"})

    # -- login ---------------------------------------------------------------------------------------------------

    def _wrap(
        self, handler: Callable[[web.Request, Login], Awaitable[web.StreamResponse]], *, changes_state: bool
    ) -> Handler:
        """Every dashboard action: 401 without a login, 403 for a state change without same-origin JSON and the
        session's CSRF token, then the handler with the login."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                current = self.logins.require(request, changes_state=changes_state)
            except Refused as refused:
                # A refused check is worth a line: a 403/415 here is a cross-site attempt or a broken client.
                log.log(
                    logging.INFO if refused.status == 401 else logging.WARNING,
                    "dashboard: refused %s %s from %s (Origin %s): %s",
                    request.method,
                    request.path,
                    request.remote,
                    request.headers.get("Origin", "-"),
                    refused.message,
                )
                return _error(refused.status, refused.message)
            try:
                return await handler(request, current)
            except Refused as refused:
                return _error(refused.status, refused.message)

        return handle

    async def _session(self, request: web.Request) -> web.StreamResponse:
        """The current login (401 without one); in --dev on loopback a new one is made without the form."""
        current = self.logins.current(request)
        if current is None and self.logins.dev_allowed(request):
            session_id, current = self.logins.dev_login()
            response = _json(self._describe(current))
            set_cookie(response, request, session_id)
            return response
        if current is None:
            return _error(401, "login required")
        return _json(self._describe(current))

    def _describe(self, current: Login) -> dict[str, Any]:
        return {
            "api_key": current.api_key,
            "csrf": current.csrf,
            "dev": current.dev,
            "inputs": list(INPUTS),
            "video_presets": list(IngressVideoEncodingPreset.keys()),
            "audio_presets": list(IngressAudioEncodingPreset.keys()),
            "doors": [{"label": label, "address": address} for label, address in self.door_addresses],
            "preview": assets.livekit_client_bundle() is not None,
            "preview_missing": "" if assets.livekit_client_bundle() is not None else assets.MISSING_BUNDLE,
        }

    async def _login(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            session_id, current = self.logins.login(
                request, str(body.get("api_key", "")), str(body.get("api_secret", ""))
            )
        except Refused as refused:
            return _error(refused.status, refused.message)
        log.info("dashboard: %s logged in from %s", current.api_key, request.remote)
        response = _json(self._describe(current))
        set_cookie(response, request, session_id)
        return response

    async def _logout(self, request: web.Request, current: Login) -> web.StreamResponse:
        self.logins.logout(request)
        response = _json({})
        clear_cookie(response)
        return response

    # -- authorisation: the Ingress API's own ----------------------------------------------------------------------

    def _grants(self, current: Login) -> Grants:
        secret = self.logins.secret_of(current.api_key)
        token = (
            AccessToken(current.api_key, secret)
            .with_identity("pyingress-dashboard")
            .with_grants(VideoGrants(ingress_admin=True))
            .with_ttl(ADMIN_TOKEN_TTL)
            .to_jwt()
        )
        try:
            return verify_token(token, self.logins.keys)
        except AuthFailure as failure:  # the key is gone from the config: the login is no longer worth anything
            raise Refused(401, failure.message) from None

    async def _call(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except IngressError as exc:
            raise Refused(exc.http_status, exc.message) from None
        except TwirpError as exc:
            raise Refused(exc.http_status, exc.msg) from None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > _MAX_BODY:
            raise Refused(413, "request too large")
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        return body

    # -- actions -------------------------------------------------------------------------------------------------

    async def _create(self, request: web.Request, current: Login) -> web.StreamResponse:
        body = await self._body(request)
        create = create_request(body)
        info: IngressInfo = await self._call(self.api.create_ingress(create, self._grants(current)))
        log.info("dashboard: %s created ingress %s", current.api_key, info.ingress_id)
        return _json(ingress_view(info, self.door_addresses))

    async def _update(self, request: web.Request, current: Login) -> web.StreamResponse:
        body = await self._body(request)
        update = UpdateIngressRequest(ingress_id=request.match_info["ingress_id"])
        if "enabled" in body:
            update.enabled = bool(body["enabled"])
        if isinstance(body.get("name"), str) and body["name"]:
            update.name = body["name"]
        info: IngressInfo = await self._call(self.api.update_ingress(update, self._grants(current)))
        return _json(ingress_view(info, self.door_addresses))

    async def _delete(self, request: web.Request, current: Login) -> web.StreamResponse:
        delete = DeleteIngressRequest(ingress_id=request.match_info["ingress_id"])
        info: IngressInfo = await self._call(self.api.delete_ingress(delete, self._grants(current)))
        log.info("dashboard: %s deleted ingress %s", current.api_key, info.ingress_id)
        return _json({"ingress_id": info.ingress_id})

    async def _preview(self, request: web.Request, current: Login) -> web.StreamResponse:
        info = await self._load(request.match_info["ingress_id"], current)
        secret = self.logins.secret_of(current.api_key)
        token, identity = preview_token(current.api_key, secret, info.room_name)
        return _json(
            {
                "ws_url": room_url_for(self.room.ws_url, request.host),
                "token": token,
                "room": info.room_name,
                "viewer": identity,
                "participant": info.participant_identity,
                "expires_in_s": int(PREVIEW_TTL.total_seconds()),
            }
        )

    async def _load(self, ingress_id: str, current: Login) -> IngressInfo:
        request = ListIngressRequest(ingress_id=ingress_id)
        listed: ListIngressResponse = await self._call(self.api.list_ingress(request, self._grants(current)))
        (info,) = listed.items
        return info

    # -- live ----------------------------------------------------------------------------------------------------

    async def _events(self, request: web.Request, current: Login) -> web.StreamResponse:
        subscription = self.feed.subscribe()  # before the snapshot: nothing falls between the two
        try:
            listed: ListIngressResponse = await self._call(
                self.api.list_ingress(ListIngressRequest(), self._grants(current))
            )
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
            )
            await response.prepare(request)
            snapshot = {
                "ingresses": [ingress_view(info, self.door_addresses) for info in listed.items],
                "stats": self._stats(),
            }
            await response.write(sse_event("snapshot", snapshot).encode())
            async for text in subscription.events():
                if not self.logins.still_valid(current):
                    break  # logged out or expired: the page must log in again
                await response.write(text.encode())
        except ConnectionResetError:
            pass  # the page went away
        finally:
            subscription.close()
        return response

    def _on_change(self, ingress_id: str, info: IngressInfo | None) -> None:
        self.feed.publish(
            "ingress",
            {"ingress_id": ingress_id, "ingress": None if info is None else ingress_view(info, self.door_addresses)},
        )

    def _stats(self) -> list[dict[str, Any]]:
        """The running sessions' newest figures (without rates for one that started since the last tick)."""
        return [
            self._last_stats.get(session.resource_id) or session_stats(session)
            for session in self.sessions.running_sessions()
        ]

    async def _push_stats(self) -> None:
        was_running = False
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            if not self.feed.listeners:
                continue
            try:
                stats = self.sampler.sample(self.sessions.running_sessions())
                await self._count_viewers(stats)
            except Exception:  # the figures are a view: a bug here must not end the live page for good
                log.exception("dashboard: session figures failed")
                continue
            self._last_stats = {figures["resource_id"]: figures for figures in stats}
            if stats or was_running:  # one empty event after the last session, so charts stop
                self.feed.publish("stats", {"sessions": stats})
            was_running = bool(stats)

    async def _count_viewers(self, stats: list[dict[str, Any]]) -> None:
        """Who else is in each session's room, from the room server's API (the dashboard's previews apart)."""
        rooms = {figures["room"] for figures in stats if figures["room"]}
        if not rooms or not self.config.api_key:
            return
        if self._rooms is None:
            url = self.room.ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
            self._rooms = LiveKitAPI(url, self.config.api_key, self.config.api_secret)
        counts: dict[str, tuple[list[str], int]] = {}
        for room in rooms:
            try:
                async with asyncio.timeout(STATS_INTERVAL_S / 2):
                    listed = await self._rooms.room.list_participants(ListParticipantsRequest(room=room))
            except Exception as exc:  # the room server is away or slow: no count this time
                log.debug("dashboard: participants of %s unknown: %s", room, exc)
                continue
            identities = [participant.identity for participant in listed.participants]
            previews = sum(1 for identity in identities if identity.startswith(PREVIEW_PREFIX))
            counts[room] = (identities, previews)
        for figures in stats:
            found = counts.get(figures["room"])
            if found is None:
                continue
            identities, previews = found
            ingress = next(
                (s.info for s in self.sessions.running_sessions() if s.resource_id == figures["resource_id"]), None
            )
            own = ingress.participant_identity if ingress is not None else ""
            others = [identity for identity in identities if identity != own]
            figures["viewers"] = {"total": len(others) - previews, "previews": previews}
