"""The running service: its listeners, the room server it publishes into, and an orderly stop.

Rooms plug their routes and servers in here (the Ingress API and WHIP on the ``whip_port`` HTTP listener, RTMP on
``rtmp_port``); ``service.py`` owns only start-up, health, metrics and shutdown.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pyingress import __version__
from pyingress.config import Config
from pyingress.control.ids import new_node_id
from pyingress.room_server import LocalRoomServer, RoomServerOptions

if TYPE_CHECKING:
    from pyingress.control.api import IngressApi
    from pyingress.control.state import IngressControl, SessionRegistry
    from pyingress.session.manager import SessionManager

log = logging.getLogger("pyingress.service")

# A hook a room uses to add its routes to the shared HTTP listener and its own servers to the service.
Extension = Callable[["IngressService"], Awaitable[None]]


class IngressService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_id = config.node_id or new_node_id()
        self.http_app = web.Application(client_max_size=1024 * 1024)
        self.http_app.router.add_get("/health", self._health)
        self.http_app.router.add_get("/availability", self._availability)
        self.room_server: LocalRoomServer | None = None
        self.ws_url = config.ws_url
        self.shutting_down = False
        # Set by the control-plane extension: what sessions use to admit, report state and be stopped.
        self.control: IngressControl | None = None
        self.sessions: SessionRegistry | None = None
        self.ingress_api: IngressApi | None = None
        self.session_manager: SessionManager | None = None
        self._runners: list[web.AppRunner] = []
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._stopped = asyncio.Event()

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def _availability(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return web.Response(status=503, text="Not available")
        return web.Response(text="Available")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run ``cleanup`` at stop, in reverse order of registration."""
        self._cleanups.append(cleanup)

    async def _serve_app(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind_address, port)
        await site.start()
        self._runners.append(runner)

    async def start(self, extensions: list[Extension] | None = None) -> None:
        if not self.ws_url:
            await self._start_room_server()
        for extension in extensions or []:
            await extension(self)
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

    async def _start_room_server(self) -> None:
        rs = self.config.room_server
        options = RoomServerOptions(
            port=rs.port,
            rtc_tcp_port=rs.rtc_tcp_port,
            rtc_udp_port=rs.rtc_udp_port,
            api_key=self.config.api_key,
            api_secret=self.config.api_secret,
            rtmp_base_url=self.config.default_rtmp_base_url,
            whip_base_url=self.config.default_whip_base_url,
            binary=rs.binary,
        )
        self.room_server = LocalRoomServer(options)
        await asyncio.to_thread(self.room_server.start)
        self.ws_url = options.ws_url
        log.info("started a local livekit-server (dev mode) at %s", self.ws_url)

    def banner(self) -> str:
        c = self.config
        lines = [f"pyingress {__version__} ({c.mode}) node {self.node_id}"]
        lines.append(
            f"  rooms:        {self.ws_url}" + ("  (local livekit-server, dev mode)" if self.room_server else "")
        )
        if c.whip_port > 0:
            lines.append(f"  HTTP:         http://{c.public_host}:{c.whip_port}  (Ingress API /twirp, WHIP, /health)")
        if c.rtmp_port > 0:
            lines.append(f"  RTMP:         {c.default_rtmp_base_url}/<stream key>")
        if c.health_port > 0:
            lines.append(f"  health:       http://{c.public_host}:{c.health_port}/")
        if c.prometheus_port > 0:
            lines.append(f"  metrics:      http://{c.public_host}:{c.prometheus_port}/metrics")
        if c.development:
            lines.append(f"  API key:      {c.api_key} / secret {c.api_secret}  (development keys)")
        lines.append("Next: create an ingress, then push to its URL + stream key, e.g.")
        lines.append(
            f"  pyingress ingress create --url http://{c.public_host}:{c.whip_port} "
            f"--api-key {c.api_key or 'KEY'} --api-secret {c.api_secret or 'SECRET'} examples/rtmp-ingress.json"
        )
        lines.append(
            "  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -c:a aac \\"
        )
        lines.append(f"         -f flv {c.default_rtmp_base_url}/<stream key>")
        return "\n".join(lines)

    def request_stop(self) -> None:
        self.shutting_down = True
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self.shutting_down = True
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                await cleanup()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.room_server is not None:
            await asyncio.to_thread(self.room_server.stop)
            self.room_server = None


def default_extensions(config: Config) -> list[Extension]:
    """The rooms ``serve`` plugs in for this config (standalone: the Ingress API, its store and webhooks)."""
    extensions: list[Extension] = []
    if config.mode == "standalone":
        from pyingress.control.standalone import standalone_control_extension

        extensions.append(standalone_control_extension)
    from pyingress.ingest.rtmp.front_door import rtmp_extension

    extensions += [session_manager_extension, rtmp_extension]
    return extensions


async def session_manager_extension(service: IngressService) -> None:
    """Sessions need the control plane (admission, state) and the room server's URL."""
    from pyingress.session.manager import SessionManager

    assert service.control is not None and service.sessions is not None, "a control-plane extension must run first"
    from pyingress.media.launcher import default_launcher

    manager = SessionManager(service.config, service.control, service.sessions, service.ws_url)
    service.session_manager = manager
    # The zygote imports PyAV now, so the first session's worker forks in milliseconds instead of starting Python.
    launcher = default_launcher()
    launcher.start()

    async def stop_launcher() -> None:
        launcher.close()

    service.add_cleanup(stop_launcher)  # after the sessions (cleanups run in reverse)
    service.add_cleanup(manager.close)


async def run_service(config: Config, extensions: list[Extension] | None = None) -> None:
    """Start everything, print what a user needs next, and run until SIGINT/SIGTERM."""
    if extensions is None:
        extensions = default_extensions(config)
    service = IngressService(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    try:
        await service.start(extensions)
        print(service.banner(), flush=True)
        await service.wait_stopped()
    finally:
        await service.stop()
