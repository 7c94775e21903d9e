"""The RTMP/RTMPS front door: the listener, publishers admitted by the sessions, their sources handed over."""

import asyncio
import contextlib
import logging
import ssl

from aiohttp import web
from livekit.protocol.ingress import IngressInput

from pyingress.config import Config, ConfigError
from pyingress.ingest.door import PushSessions
from pyingress.ingest.rtmp.server import RtmpLimits, RtmpServer

log = logging.getLogger("pyingress.rtmp")


def rtmp_limits(config: Config) -> RtmpLimits:
    r = config.rtmp
    return RtmpLimits(
        handshake_timeout=r.handshake_timeout,
        publish_timeout=r.publish_timeout,
        read_timeout=r.read_timeout,
        max_connections=r.max_connections,
        max_connections_per_ip=r.max_connections_per_ip,
        max_chunk_size=r.max_chunk_size,
        max_message_size=r.max_message_size,
    )


def tls_context(config: Config) -> ssl.SSLContext | None:
    if not config.rtmp.rtmps_port:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.rtmp.cert_file, config.rtmp.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"rtmp.cert_file: cannot load the RTMPS certificate and key: {exc}") from None
    return context


class RtmpFrontDoor:
    """The RTMP/RTMPS listener as a service component: publishers admitted by the sessions, sources handed over."""

    def __init__(self, config: Config, sessions: PushSessions) -> None:
        self.config = config
        self.sessions = sessions
        self.server = RtmpServer(
            self._admit,
            host=config.bind_address,
            port=config.rtmp_port if config.rtmp_port > 0 else None,
            tls_port=config.rtmp.rtmps_port or None,
            ssl_context=tls_context(config),
            limits=rtmp_limits(config),
        )
        self._accepting: asyncio.Task[None] | None = None

    @staticmethod
    def wanted(config: Config) -> bool:
        return config.rtmp_port > 0 or bool(config.rtmp.rtmps_port)

    async def _admit(self, stream_key: str, app: str) -> str:
        return await self.sessions.admit_push(stream_key, IngressInput.RTMP_INPUT)

    async def start(self) -> None:
        await self.server.start()
        self._accepting = asyncio.create_task(self._accept_loop(), name="rtmp-accept")
        log.info("RTMP listening on %s", self.server.ports)

    async def _accept_loop(self) -> None:
        async for source in self.server:
            self.sessions.attach(source)

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        await self.server.close()

    def add_routes(self, app: web.Application) -> None:
        """RTMP has its own listener."""

    def addresses(self) -> list[tuple[str, str]]:
        found = []
        if self.config.rtmp_port > 0:
            found.append(("RTMP", f"{self.config.default_rtmp_base_url}/<stream key>"))
        if self.config.rtmp.rtmps_port:
            host = self.config.public_host
            found.append(("RTMPS", f"rtmps://{host}:{self.config.rtmp.rtmps_port}/live/<stream key>"))
        return found
