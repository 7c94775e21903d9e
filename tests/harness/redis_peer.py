"""A real Debian redis-server on a free loopback port, nothing persisted."""

import shutil
import subprocess
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.processes import PeerError, start_logged, stop, tcp_open, wait_until


class RedisPeer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def start(self) -> "RedisPeer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise PeerError("redis-server not installed: run ./run test (its set-up installs Debian redis-server)")
        self.process = start_logged(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            self.log_path,
        )
        wait_until(lambda: tcp_open(self.port), 15, "redis-server", self.process, self.log_path)
        return self

    def stop(self) -> None:
        stop(self.process)
