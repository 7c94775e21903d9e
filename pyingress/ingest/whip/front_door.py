"""The WHIP front door: livekit/ingress's endpoints on the shared HTTP listener (reference ingress.md §1.5).

    POST    /{app}/{stream_key}            offer in, 201 + answer (application/sdp), Location, ETag
    POST    /{app}                         the same, the stream key in ``Authorization`` (``Bearer `` optional)
    OPTIONS /{app}[/{stream_key}]          204 + CORS (Accept-Post: application/sdp)
    DELETE  /{app}/{stream_key}/{id}       the publisher leaves (404 ``ingress not found`` for an unknown id)
    PATCH   /{app}/{stream_key}/{id}       ICE restart (``If-Match: *``, pass-through), else livekit/ingress's 422s
    OPTIONS /{app}/{stream_key}/{id}       CORS for the resource

A POST is checked in this order: the offer on its own (``offer.py``: nothing is stored or disturbed for an offer
we could never answer — a broken client retrying must not knock a working publisher of the same key off), then
admission (unknown key, ``session is disabled``, ``invalid ingress type``, ``server capacity exceeded``: the
session manager's words, as for RTMP), then the answer for the ingress's mode (its codecs, ICE gathering within
5 s).  Refusals are the error's HTTP status with its message as the body, as livekit/ingress writes them; unlike
it we add ``Access-Control-Allow-Origin`` to them too, so a browser page can read why.

A publisher that POSTs again on the same key while its session runs (or within the reconnect grace) joins that
session and replaces the older connection (``session/slot.py``: newest wins).  Its Location names a resource of
its own, so a late DELETE from the replaced publisher cannot end the new one.
"""

import asyncio
import logging
import time
import zlib

from aiohttp import web
from livekit.protocol.ingress import IngressInput

from pyingress.config import Config
from pyingress.control.errors import MISSING_STREAM_KEY, IngressError
from pyingress.control.ids import new_resource_id
from pyingress.control.transcoding import is_transcoded
from pyingress.ingest.door import PushSessions
from pyingress.ingest.whip.connection import WhipConnection
from pyingress.ingest.whip.errors import (
    RESTART_NOT_SUPPORTED,
    TRICKLE_NOT_SUPPORTED,
    WHIP_RESOURCE_NOT_FOUND,
)
from pyingress.ingest.whip.offer import parse_offer
from pyingress.ingest.whip.rtc import RtcSettings, rtc_settings

log = logging.getLogger("pyingress.whip")

# Ended connections are forgotten this long after the reconnect grace window (a late DELETE then gets a 404).
FORGET_AFTER = 60.0


def _cors(resource: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}
    if resource:
        headers["Access-Control-Allow-Methods"] = "PATCH, OPTIONS, DELETE"
    else:
        headers["Accept-Post"] = "application/sdp"
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Expose-Headers"] = "Location"
    return headers


def _refusal(error: IngressError) -> web.Response:
    return web.Response(status=error.http_status, text=error.message, headers={"Access-Control-Allow-Origin": "*"})


class WhipFrontDoor:
    """WHIP publishers admitted by the sessions, their sources handed over; routes on the shared listener."""

    def __init__(self, config: Config, sessions: PushSessions, rtc: RtcSettings | None = None) -> None:
        self.config = config
        self.sessions = sessions
        self.rtc = rtc if rtc is not None else rtc_settings(config)
        self.connections: dict[str, WhipConnection] = {}  # connection id (Location) → connection
        self._latest: dict[str, WhipConnection] = {}  # session resource id → its newest connection
        self.closing = False

    @staticmethod
    def wanted(config: Config) -> bool:
        return config.whip_port > 0

    async def start(self) -> None:
        if self.rtc.ignored:
            log.info(
                "WHIP: rtc_config %s accepted but not used (one UDP port per candidate)", ", ".join(self.rtc.ignored)
            )

    async def close(self) -> None:
        self.closing = True
        connections = list(self.connections.values())
        for connection in connections:
            connection.source.close("server shutting down")
        await asyncio.gather(*(c.wait_closed() for c in connections), return_exceptions=True)

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/{app}", self._post)
        router.add_post("/{app}/{stream_key}", self._post)
        router.add_route("OPTIONS", "/{app}", self._options)
        router.add_route("OPTIONS", "/{app}/{stream_key}", self._options)
        router.add_delete("/{app}/{stream_key}/{resource_id}", self._delete)
        router.add_patch("/{app}/{stream_key}/{resource_id}", self._patch)
        router.add_route("OPTIONS", "/{app}/{stream_key}/{resource_id}", self._options_resource)

    def addresses(self) -> list[tuple[str, str]]:
        return [("WHIP", f"{self.config.default_whip_base_url}/<stream key>")]

    # -- handlers ---------------------------------------------------------------------------------------------

    async def _options(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_cors(resource=False))

    async def _options_resource(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers=_cors(resource=True))

    async def _post(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        stream_key = request.match_info.get("stream_key")
        if stream_key is None:
            # OBS adds the "Bearer " prefix, some clients do not (livekit/ingress accepts both).
            stream_key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        body = await request.text()  # aiohttp refuses a body over the listener's limit with 413
        try:
            if not stream_key:
                raise MISSING_STREAM_KEY
            connection = await self._open(body, stream_key, app, request.remote or "")
        except IngressError as error:
            log.info("WHIP POST /%s/…: refused: %s", app, error.message)
            return _refusal(error)
        headers = _cors(resource=False)
        headers["Location"] = f"/{app}/{stream_key}/{connection.connection_id}"
        headers["ETag"] = f"{zlib.crc32(body.encode()):08x}"
        return web.Response(
            status=201, body=connection.answer.encode(), content_type="application/sdp", headers=headers
        )

    async def _open(self, body: str, stream_key: str, app: str, remote: str) -> WhipConnection:
        offer = parse_offer(body)
        resource_id = await self.sessions.admit_push(stream_key, IngressInput.WHIP_INPUT)
        info = self.sessions.admitted_info(resource_id)
        passthrough = info is None or not is_transcoded(info)
        # Resource ids are never reused: one we have a connection for is a running session being rejoined.
        rejoin = resource_id in self._latest
        connection = WhipConnection(
            offer,
            resource_id=resource_id,
            connection_id=new_resource_id(IngressInput.WHIP_INPUT) if rejoin else resource_id,
            stream_key=stream_key,
            app=app,
            rtc=self.rtc,
            remote_address=remote,
        )
        try:
            connection.answer = await connection.negotiate(passthrough)
        except IngressError as error:
            if not rejoin:
                # The session was started for this publisher: it ends with the reason (ERROR, as livekit/ingress).
                connection.fail(error.message)
                self.sessions.attach(connection.source)
            else:
                connection.source.close(error.message)
            raise
        self._forget_old()
        self.connections[connection.connection_id] = connection
        self._latest[resource_id] = connection
        self.sessions.attach(connection.source)
        if connection.source.ended:  # the session ended meanwhile: attach closed the source
            raise WHIP_RESOURCE_NOT_FOUND
        connection.start()
        log.info(
            "WHIP %s: publisher %s on %s (%s%s)",
            connection.connection_id,
            remote,
            resource_id,
            "pass-through" if passthrough else "transcoded",
            f", simulcast {'/'.join(offer.simulcast_rids)}" if offer.simulcast_rids else "",
        )
        return connection

    async def _delete(self, request: web.Request) -> web.Response:
        connection = self.connections.get(request.match_info["resource_id"])
        if connection is None or connection.ended:
            return _refusal(WHIP_RESOURCE_NOT_FOUND)
        log.info("WHIP %s: DELETE", connection.connection_id)
        connection.delete()
        return web.Response(status=200, headers={"Access-Control-Allow-Origin": "*"})

    async def _patch(self, request: web.Request) -> web.Response:
        connection = self.connections.get(request.match_info["resource_id"])
        if connection is None or connection.ended:
            return _refusal(WHIP_RESOURCE_NOT_FOUND)
        headers = {"Access-Control-Allow-Origin": "*"}
        if request.headers.get("If-Match", "").strip() != "*":
            return web.Response(status=422, text=TRICKLE_NOT_SUPPORTED, headers=headers)
        if not connection.passthrough:
            return web.Response(status=422, text=RESTART_NOT_SUPPORTED, headers=headers)
        body = await request.text()
        try:
            fragment = await connection.restart_ice(body)
        except IngressError as error:
            return _refusal(error)
        headers["Content-Type"] = "application/trickle-ice-sdpfrag"
        headers["ETag"] = f"{zlib.crc32(body.encode()):08x}"
        return web.Response(status=200, body=fragment.encode(), headers=headers)

    def _forget_old(self) -> None:
        """Drop connections that ended long enough ago that nobody can DELETE or rejoin them usefully."""
        horizon = time.monotonic() - self.config.reconnect_grace_seconds - FORGET_AFTER
        for key, connection in list(self.connections.items()):
            if connection.ended and connection.ended_at is not None and connection.ended_at < horizon:
                del self.connections[key]
                if self._latest.get(connection.resource_id) is connection:
                    del self._latest[connection.resource_id]
