"""``GET /pyingress/v1/progress/{ingress_id}``: how far a URL ingress's file has played, for the CLI's ``watch``.

IngressState has no field for it and pyingress does not invent protobuf fields, so this is pyingress's own,
beside the Ingress API and under its rule: a LiveKit access token with the ``ingressAdmin`` grant.  Answers
``{"ingress_id", "resource_id", "position_s", "duration_s"}`` (``duration_s`` null for a live stream), 404 while no
session of that ingress reports a position (push ingresses never do), 401/403 as the Ingress API does.
"""

import json
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from pyingress.control.auth import AuthFailure, authenticate

PATH = "/pyingress/v1/progress"


class _Session(Protocol):
    resource_id: str

    @property
    def progress(self) -> tuple[float, float | None] | None: ...


class _Sessions(Protocol):
    def session_of(self, ingress_id: str) -> _Session | None: ...


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class ProgressApi:
    """A service part that only serves HTTP: nothing to start or close."""

    def __init__(self, sessions: _Sessions, keys: Mapping[str, str]) -> None:
        self.sessions = sessions
        self.keys = keys

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PATH + "/{ingress_id}", self._progress)

    def addresses(self) -> list[tuple[str, str]]:
        return []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def _progress(self, request: web.Request) -> web.Response:
        try:
            grants = authenticate(request.headers.get("Authorization"), request.query.get("access_token"), self.keys)
        except AuthFailure as failure:
            return _json({"error": failure.message}, 401)
        if grants is None:
            return _json({"error": "no access token"}, 401)
        if not grants.ingress_admin:
            return _json({"error": "permissions denied"}, 403)
        ingress_id = request.match_info["ingress_id"]
        session = self.sessions.session_of(ingress_id)
        progress = session.progress if session is not None else None
        if session is None or progress is None:
            return _json({"error": f"{ingress_id}: no file playing"}, 404)
        position, duration = progress
        body = {"ingress_id": ingress_id, "resource_id": session.resource_id}
        return _json({**body, "position_s": position, "duration_s": duration})
