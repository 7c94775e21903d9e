"""What every front door is to the service, and what a push door may ask of the sessions.

Doors are built by the composition (``pyingress.compose``) with what they need passed in, started and closed by
the service in order, and tell the banner where encoders push to.
"""

from typing import Protocol

from aiohttp import web
from livekit.protocol.ingress import IngressInfo

from pyingress.ingest.source import MediaSource


class PushSessions(Protocol):
    """The session manager as a push door sees it (``session.manager.SessionManager``)."""

    async def admit_push(self, stream_key: str, input_type: int) -> str:
        """Admit a publisher (IngressError with LiveKit's words refuses it); returns the session's resource id."""
        ...

    def admitted_info(self, resource_id: str) -> IngressInfo | None:
        """The ingress of the running session ``resource_id`` (e.g. between ``admit_push`` and ``attach``), or None."""
        ...

    async def check_push(self, stream_key: str, input_type: int) -> None:
        """Would ``admit_push`` take this publisher now?  Raises the same IngressError if not; changes nothing."""
        ...

    def attach(self, source: MediaSource) -> None:
        """Hand an admitted publisher's source (``source.resource_id`` set) to its session."""
        ...


class FrontDoor(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def add_routes(self, app: web.Application) -> None:
        """Routes on the shared HTTP listener (``whip_port``), for doors that speak HTTP (WHIP); others add none."""
        ...

    def addresses(self) -> list[tuple[str, str]]:
        """(label, where to push) per listener, e.g. ("RTMP", "rtmp://host:1935/live/<stream key>")."""
        ...
