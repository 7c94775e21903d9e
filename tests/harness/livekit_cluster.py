"""A self-hosted LiveKit as the livekit mode meets it: Debian redis-server, an unmodified livekit-server v1.13.5 on
that Redis with its ``ingress:`` URLs, and pyingress workers (``mode: livekit``) on the same Redis.

livekit-server's ``ingress.rtmp_base_url`` / ``whip_base_url`` point at the first worker, as a load balancer in
front of the workers would; a test that wants another worker pushes to that worker's own port.  Each part can be
stopped and started again on the same port (Redis restarts, a worker killed).
"""

import signal
from pathlib import Path
from typing import Any

from pyingress.config import RedisConfig
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.methods import LIST_ACTIVE_INGRESS
from pyingress.control.psrpc.redis_bus import RedisBus
from pyingress.control.psrpc.rpc import RpcClient
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port, free_udp_port
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.redis_peer import RedisPeer


class LivekitWorker(PyingressPeer):
    """`pyingress serve` in livekit mode."""

    def __init__(self, workdir: Path, ws_url: str, redis_address: str, extra: dict[str, Any] | None = None) -> None:
        # Every listener on a port of its own: tests run beside other pyingress instances (SRT listens on UDP).
        config: dict[str, Any] = {"mode": "livekit", "redis": {"address": redis_address}, "srt_port": free_udp_port()}
        super().__init__(workdir, ws_url, {**config, **(extra or {})})

    @property
    def rtmp_port(self) -> int:
        return int(self.config["rtmp_port"])

    @property
    def whip_port(self) -> int:
        return int(self.config["whip_port"])

    def kill(self) -> None:
        """SIGKILL: no goodbye to livekit-server, no final states."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


class LivekitCluster:
    def __init__(
        self,
        workdir: Path,
        workers: int = 1,
        worker_extra: dict[str, Any] | None = None,
        webhook_urls: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.redis = RedisPeer(workdir)
        self._worker_ports = [(free_port(), free_port()) for _ in range(workers)]
        rtmp0, whip0 = self._worker_ports[0]
        self.livekit = LivekitPeer(
            workdir,
            redis_address=self.redis.address,
            rtmp_base_url=f"rtmp://127.0.0.1:{rtmp0}/live",
            whip_base_url=f"http://127.0.0.1:{whip0}/w",
            webhook_urls=webhook_urls,
        )
        self.workers = [
            LivekitWorker(
                workdir / f"worker{index}",
                self.livekit.ws_url,
                self.redis.address,
                {"rtmp_port": rtmp, "whip_port": whip, **(worker_extra or {})},
            )
            for index, (rtmp, whip) in enumerate(self._worker_ports)
        ]

    def start(self, workers: bool = True) -> "LivekitCluster":
        """Redis, livekit-server and (unless ``workers`` is false: a test starts its own) every worker."""
        self.redis.start()
        self.livekit.start()
        for worker in self.workers if workers else ():
            worker.start()
        return self

    def replace_worker(self, index: int, workdir: Path, extra: dict[str, Any] | None = None) -> LivekitWorker:
        """Worker ``index`` stopped and replaced by a new one, not yet started, on the same RTMP and WHIP ports (for
        worker 0 the ones livekit-server's base URLs name) with ``extra`` config on top: a test's own settings."""
        self.workers[index].stop()
        rtmp, whip = self._worker_ports[index]
        worker = LivekitWorker(
            workdir, self.livekit.ws_url, self.redis.address, {"rtmp_port": rtmp, "whip_port": whip, **(extra or {})}
        )
        self.workers[index] = worker
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.livekit.stop()
        self.redis.stop()

    def rtmp_url(self, worker: int, stream_key: str) -> str:
        return f"rtmp://127.0.0.1:{self.workers[worker].rtmp_port}/live/{stream_key}"


async def list_active_ingress(redis_address: str, timeout_s: float = 0.5) -> dict[str, list[Any]]:
    """IngressInternal.ListActiveIngress over the bus, as livekit-server's client would ask it (it gathers every
    worker's answer until the timeout): server id → that worker's sessions (``rpc.IngressSession``)."""
    bus = RedisBus.from_config(RedisConfig(address=redis_address))
    await bus.start()
    client = RpcClient(bus, "IngressInternal")
    client.start()
    try:
        await bus.wait_connected(5)
        await bus.settled()
        answers = await client.call_multi(
            LIST_ACTIVE_INGRESS,
            messages.ListActiveIngressRequest(),
            messages.ListActiveIngressResponse,
            topic=[""],
            timeout_s=timeout_s,
        )
    finally:
        client.close()
        await bus.close()
    return {a.server_id: list(a.result.ingress_sessions) for a in answers if a.result is not None}
