"""The running service: its components started in order, the HTTP listeners, health, metrics and an orderly stop.

What runs is decided in one place, ``pyingress.compose.build_service``: the room connection, the control plane for
the mode, the media worker launcher, the session manager and the front doors, each built with what it needs.  The
service only starts them in that order and closes them in reverse; it knows no mode, and of the doors only the
addresses they report (the banner's ffmpeg example uses the RTMP one when there is one).
"""

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pyingress import __version__
from pyingress.config import Config
from pyingress.ingest.door import FrontDoor
from pyingress.room_server import RoomConnection

log = logging.getLogger("pyingress.service")


class Component(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Sessions(Component, Protocol):
    async def drain(self, timeout: float | None = None) -> bool:
        """Admit nothing new; wait (at most ``timeout``) until the running sessions end; True when none is left."""
        ...


class NodeStatus(Component, Protocol):
    def available(self) -> bool:
        """Whether this node would take a session of any kind now (LiveKit's availability rule)."""
        ...


class ControlPlane(Component, Protocol):
    """Who owns the ingress records for this mode, and the routes it serves on the HTTP listener (if any)."""

    def add_routes(self, app: web.Application) -> None: ...


class HttpPart(Component, Protocol):
    """A part that only serves HTTP on the shared listener (the standalone dashboard)."""

    def add_routes(self, app: web.Application) -> None: ...

    def addresses(self) -> list[tuple[str, str]]:
        """(label, URL) for the banner, printed first: where a person starts."""
        ...


class IngressService:
    def __init__(
        self,
        config: Config,
        *,
        node_id: str,
        room: RoomConnection,
        control_plane: ControlPlane,
        workers: Component,
        sessions: Sessions,
        node: NodeStatus,
        front_doors: Sequence[FrontDoor],
        http_parts: Sequence[HttpPart] = (),
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.room = room
        self.control_plane = control_plane
        self.sessions = sessions
        self.node = node
        self.front_doors = list(front_doors)
        self.http_parts = list(http_parts)
        # Start order: where to publish, who owns the records, the workers, the sessions, then the doors that
        # let publishers in.  Closed in reverse: doors first, so nothing new arrives while sessions end.
        # HTTP parts (the dashboard) come right after the records they show, and close after the sessions they watch.
        self._components: list[Component] = [
            room,
            control_plane,
            *self.http_parts,
            workers,
            sessions,
            node,
            *self.front_doors,
        ]
        self._started: list[Component] = []
        self.http_app = web.Application(client_max_size=1024 * 1024)
        self.http_app.router.add_get("/health", self._health)
        self.http_app.router.add_get("/availability", self._availability)
        control_plane.add_routes(self.http_app)
        for part in self.http_parts:
            part.add_routes(self.http_app)
        for door in self.front_doors:
            door.add_routes(self.http_app)
        self.shutting_down = False
        self._runners: list[web.AppRunner] = []
        self._stopped = asyncio.Event()

    @property
    def ws_url(self) -> str:
        return self.room.ws_url

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def _availability(self, request: web.Request) -> web.Response:
        # What a load balancer asks: draining, or too busy to take one more session of the costliest kind → 503.
        if self.shutting_down or not self.node.available():
            return web.Response(status=503, text="Not available")
        return web.Response(text="Available")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _serve_app(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind_address, port)
        await site.start()
        self._runners.append(runner)

    async def start(self) -> None:
        """Start every part in order; if one fails, what was started is closed again before the error goes on."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        for component in self._components:
            await component.start()
            self._started.append(component)
        if self.config.whip_port > 0:
            await self._serve_app(self.http_app, self.config.whip_port)
        if self.config.health_port > 0:
            health = web.Application()
            health.router.add_get("/", self._health)
            health.router.add_get("/availability", self._availability)
            await self._serve_app(health, self.config.health_port)
        if self.config.prometheus_port > 0:
            metrics = web.Application()
            metrics.router.add_get("/metrics", self._metrics)
            await self._serve_app(metrics, self.config.prometheus_port)

    def banner(self) -> str:
        c = self.config
        lines = [f"pyingress {__version__} ({c.mode}) node {self.node_id}"]
        if c.whip_port > 0:
            for label, address in (address for part in self.http_parts for address in part.addresses()):
                lines.append(f"  {label + ':':<13} {address}")
        lines.append(
            f"  rooms:        {self.ws_url}" + ("  (local livekit-server, dev mode)" if self.room.local else "")
        )
        # livekit mode: the records and the Ingress API are livekit-server's; this worker answers it over Redis.
        livekit = c.mode == "livekit"
        if livekit:
            bus = c.redis.address or ", ".join(c.redis.sentinel_addresses or c.redis.cluster_addresses)
            lines.append(f"  bus:          redis {bus}  (ingress worker of livekit-server over psrpc)")
        if c.whip_port > 0:
            served = "WHIP, /health" if livekit else "Ingress API /twirp, WHIP, /health"
            lines.append(f"  HTTP:         http://{c.public_host}:{c.whip_port}  ({served})")
        addresses = [address for door in self.front_doors for address in door.addresses()]
        for label, address in addresses:
            lines.append(f"  {label + ':':<13} {address}")
        if c.health_port > 0:
            lines.append(f"  health:       http://{c.public_host}:{c.health_port}/")
        if c.prometheus_port > 0:
            lines.append(f"  metrics:      http://{c.public_host}:{c.prometheus_port}/metrics")
        if c.development:
            lines.append(f"  API key:      {c.api_key} / secret {c.api_secret}  (development keys)")
        api_url = self.ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        pages = [address for part in self.http_parts for _, address in part.addresses()] if c.whip_port > 0 else []
        if pages:
            lines.append(f"Next: open {pages[0]} and press Create, or create an ingress here and push to it:")
        else:
            lines.append(
                "Next: create an ingress through livekit-server's API, then push to its URL + stream key, e.g."
                if livekit
                else "Next: create an ingress, then push to its URL + stream key, e.g."
            )
        lines.append(
            f"  ./run ingress create --url {api_url if livekit else f'http://{c.public_host}:{c.whip_port}'} "
            f"--api-key {c.api_key or 'KEY'} --api-secret {c.api_secret or 'SECRET'} examples/rtmp-ingress.json"
        )
        rtmp = [address for label, address in addresses if label == "RTMP"]
        if rtmp:
            lines.append(
                "  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -c:a aac \\"
            )
            lines.append(f"         -f flv {rtmp[0]}")
        return "\n".join(lines)

    def request_stop(self) -> None:
        self.shutting_down = True
        self._stopped.set()

    async def drain(self) -> None:
        """Stop like livekit/ingress on SIGTERM: ``/availability`` answers 503 at once (the load balancer sends
        new encoders elsewhere), new publishes are refused with ``server shutting down``, and running sessions go
        on until their publishers end (at most ``drain_timeout``); then the service stops."""
        self.shutting_down = True
        timeout = self.config.drain_timeout or None
        if not await self.sessions.drain(timeout):
            log.warning("drain_timeout (%.0f s) passed with sessions still running: ending them", timeout or 0)
        self.request_stop()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Close the components in reverse; the HTTP listeners go after the sessions, before the room server."""
        self.shutting_down = True
        while self._started:
            component = self._started.pop()
            if component is self.room:
                await self._close_listeners()
            try:
                await component.close()
            except Exception:  # the rest must still close: a room server left running outlives us
                log.exception("closing %s failed", type(component).__name__)
        await self._close_listeners()

    async def _close_listeners(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


async def run_service(service: IngressService) -> None:
    """Start everything, print what a user needs next, and run until told to stop.

    SIGTERM or SIGQUIT drains (``IngressService.drain``); a second one, or SIGINT, stops at once: every session ends
    cleanly (INACTIVE, the participant leaves, ``ingress_ended`` is sent)."""
    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[None]] = []

    def drain_or_stop() -> None:
        if draining:
            log.info("stopping now: ending the running sessions")
            service.request_stop()
            return
        log.info("draining: new publishes are refused, running sessions go on until they end (SIGINT: stop now)")
        draining.append(loop.create_task(service.drain(), name="drain"))

    loop.add_signal_handler(signal.SIGINT, service.request_stop)
    for sig in (signal.SIGTERM, signal.SIGQUIT):
        loop.add_signal_handler(sig, drain_or_stop)
    try:
        await service.start()
        # What start-up built (modules, the app, the store) lives as long as the process: out of the collector's
        # sight, a full collection, which pauses the event loop and so every session, scans only what came later.
        gc.freeze()
        print(service.banner(), flush=True)
        await service.wait_stopped()
    finally:
        for task in draining:
            task.cancel()
        await service.stop()
