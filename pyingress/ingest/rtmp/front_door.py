"""The RTMP/RTMPS listener wired into the service: admission through the session manager, sources to sessions."""

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from livekit.protocol.ingress import IngressInput

from pyingress.config import Config, ConfigError
from pyingress.ingest.rtmp.server import RtmpLimits, RtmpServer

if TYPE_CHECKING:
    from pyingress.service import IngressService

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


async def rtmp_extension(service: "IngressService") -> None:
    config = service.config
    if config.rtmp_port <= 0 and not config.rtmp.rtmps_port:
        return
    manager = service.session_manager
    assert manager is not None, "the session manager extension must run first"

    async def admit(stream_key: str, app: str) -> str:
        return await manager.admit_push(stream_key, IngressInput.RTMP_INPUT)

    server = RtmpServer(
        admit,
        host=config.bind_address,
        port=config.rtmp_port if config.rtmp_port > 0 else None,
        tls_port=config.rtmp.rtmps_port or None,
        ssl_context=tls_context(config),
        limits=rtmp_limits(config),
    )
    await server.start()

    async def accept_loop() -> None:
        async for source in server:
            manager.attach(source)

    task = asyncio.create_task(accept_loop(), name="rtmp-accept")

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.close()

    service.add_cleanup(close)
    log.info("RTMP listening on %s", server.ports)
