"""A local livekit-server in dev mode: the room server ``serve`` starts while no ``ws_url`` is configured.

The same class starts the real livekit-server the end-to-end tests publish into, so the product and its tests run
the room server one way.  The binary is the one the set-up script builds with ``go install`` (livekit-server
v1.13.5, installed as ``server``).
"""

import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

log = logging.getLogger("pyingress.service")

REPO_BIN = Path(__file__).resolve().parent.parent / ".cache" / "bin"


class RoomServerError(RuntimeError):
    pass


def find_livekit_server(explicit: str = "") -> str:
    """The livekit-server binary: the configured path, the checkout's .cache/bin/server, else PATH."""
    candidates = [explicit] if explicit else [str(REPO_BIN / "server"), "livekit-server"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise RoomServerError(
        "livekit-server not found: run `./run serve` (it installs it), set room_server.binary, or configure ws_url"
    )


@dataclass
class RoomServerOptions:
    port: int = 7880
    rtc_tcp_port: int = 7881
    rtc_udp_port: int = 7882
    api_key: str = "devkey"
    api_secret: str = "secret"
    redis_address: str = ""
    rtmp_base_url: str = ""
    whip_base_url: str = ""
    webhook_urls: list[str] = field(default_factory=list)
    binary: str = ""
    log_path: str = ""  # empty: discard the server's own log
    congestion_control: bool = True  # LiveKit's downlink congestion control (its default: on)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def yaml(self) -> str:
        config: dict[str, object] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.rtc_udp_port,
                "use_external_ip": False,
                # Everything here is loopback: let ICE offer it (dev mode would otherwise pick interface IPs).
                "enable_loopback_candidate": True,
                "node_ip": "127.0.0.1",
                # ...and take media there only.  Otherwise the server opens a UDP socket on every host address and
                # names each node_ip: the one candidate it offers can then be another address's socket (Go map
                # order, once per process), so its checks leave from that address while what a client sends to
                # 127.0.0.1 reaches a socket that knows no session (docs/chaos.md).
                "ips": {"includes": ["127.0.0.1/32"]},
                "congestion_control": {"enabled": self.congestion_control},
            },
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": "info"},
        }
        if self.redis_address:
            config["redis"] = {"address": self.redis_address}
        ingress = {k: v for k, v in (("rtmp_base_url", self.rtmp_base_url), ("whip_base_url", self.whip_base_url)) if v}
        if ingress:
            config["ingress"] = ingress
        if self.webhook_urls:
            config["webhook"] = {"api_key": self.api_key, "urls": list(self.webhook_urls)}
        return yaml.safe_dump(config)


class LocalRoomServer:
    """Runs livekit-server ``--dev`` as a child process until ``stop()``; usable sync or as an async context."""

    def __init__(self, options: RoomServerOptions) -> None:
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        binary = find_livekit_server(self.options.binary)
        self._dir = tempfile.TemporaryDirectory(prefix="pyingress-livekit-")
        config_path = Path(self._dir.name) / "livekit.yaml"
        config_path.write_text(self.options.yaml())
        log = open(self.options.log_path, "ab") if self.options.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [binary, "--dev", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RoomServerError(f"livekit-server exited with code {self._process.returncode} at start")
            try:
                with urllib.request.urlopen(self.options.http_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RoomServerError(f"livekit-server did not answer on {self.options.http_url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def __aenter__(self) -> "LocalRoomServer":
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class RoomConnection:
    """Where sessions publish: the configured ``ws_url``, or a local livekit-server started for the purpose.

    A service component (``start``/``close``); the URL is known once ``start`` has run."""

    def __init__(self, ws_url: str, local: RoomServerOptions) -> None:
        self._ws_url = ws_url
        self._options = local
        self.server: LocalRoomServer | None = None

    @property
    def ws_url(self) -> str:
        return self._ws_url

    @property
    def local(self) -> bool:
        return self.server is not None

    async def start(self) -> None:
        if self._ws_url:
            return
        server = LocalRoomServer(self._options)
        await asyncio.to_thread(server.start)
        self.server = server
        self._ws_url = self._options.ws_url
        log.info("started a local livekit-server (dev mode) at %s", self._ws_url)

    async def close(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            self.server = None
