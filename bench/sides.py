"""The two ingresses side by side for the comparison benchmarks: livekit/ingress (the Go + GStreamer original from
``../shared/tools/livekit-ingress/``) as livekit-server's worker over Redis, and pyingress standalone, both
publishing into the same livekit-server.  Used by ``vs_livekit_ingress.py`` (RTMP) and ``whip_side_by_side.py``.
"""

import gzip
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import wait_until

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO.parent / "shared" / "tools" / "livekit-ingress"
KEY, SECRET = "devkey", "secretsecretsecretsecretsecret00"


def go_available() -> bool:
    return (TOOLS / "ingress.gz").exists()


def go_binary() -> Path:
    """The original's binary, unpacked into .cache/livekit-ingress/ as ``ingress`` (it re-runs itself by that name)."""
    target = REPO / ".cache" / "livekit-ingress" / "ingress"
    source = TOOLS / "ingress.gz"
    if not target.exists() or source.stat().st_mtime > target.stat().st_mtime:
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(source) as packed, target.open("wb") as out:
            shutil.copyfileobj(packed, out)
        target.chmod(0o755)
    return target


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class Peers:
    """Redis, livekit-server (with livekit/ingress as its worker when ``with_go``), and pyingress, in ``work``.

    Both ingresses accept RTMP and WHIP; their admission is opened up (a 0.1-core cost per session, no idle
    reserve) so that neither refuses a session the other would take on these 2 cores.
    """

    def __init__(self, work: Path, with_go: bool = True, py_log: str = "warn") -> None:
        self.work = work
        self.with_go = with_go
        self.py_log = py_log
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_port, self.lk_port = free_port(), free_port()
        self.go_rtmp, self.go_whip = free_port(), free_port()
        self.py_rtmp, self.py_http = free_port(), free_port()
        self.go: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.lk_port}"

    def api_url(self, side: str) -> str:
        """Where a side's Ingress API is: livekit-server for the original, pyingress itself when standalone."""
        return f"http://127.0.0.1:{self.lk_port}" if side == "go" else f"http://127.0.0.1:{self.py_http}"

    def root_pid(self, side: str) -> int:
        proc = self.go if side == "go" else self.py
        assert proc is not None
        return proc.pid

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work)
        self.procs.append(proc)
        return proc

    def start(self) -> "Peers":
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""])
        wait_until(lambda: listening(self.redis_port), 20, "redis")
        lk = {
            "port": self.lk_port,
            "rtc": {"tcp_port": free_port(), "udp_port": free_udp_port(), "use_external_ip": False},
            "redis": {"address": f"127.0.0.1:{self.redis_port}"},
            "keys": {KEY: SECRET},
            "ingress": {
                "rtmp_base_url": f"rtmp://127.0.0.1:{self.go_rtmp}/x",
                "whip_base_url": f"http://127.0.0.1:{self.go_whip}/w",
            },
        }
        (self.work / "lk.yaml").write_text(yaml.safe_dump(lk))
        self._spawn("livekit", [str(REPO / ".cache/bin/server"), "--dev", "--config", "lk.yaml", "--bind", "127.0.0.1"])
        wait_until(lambda: listening(self.lk_port), 30, "livekit-server")
        if self.with_go:
            self._start_go()
        py = {
            "api_key": KEY,
            "api_secret": SECRET,
            "ws_url": self.ws_url,
            "bind_address": "127.0.0.1",
            "rtmp_port": self.py_rtmp,
            "whip_port": self.py_http,
            "srt_port": -1,
            "store_path": str(self.work / "py.sqlite3"),
            "rtc_config": {"enable_loopback_candidate": True},
            "logging": {"level": self.py_log},
            "cpu_cost": {"rtmp_cpu_cost": 0.1, "whip_cpu_cost": 0.1, "min_idle_ratio": 0.0},
        }
        (self.work / "py.yaml").write_text(yaml.safe_dump(py))
        self.py = self._spawn("pyingress", [sys.executable, "-m", "pyingress", "serve", "--config", "py.yaml"])
        wait_until(lambda: listening(self.py_rtmp), 60, "pyingress")
        return self

    def _start_go(self) -> None:
        binary = go_binary()
        go = {
            "api_key": KEY,
            "api_secret": SECRET,
            "ws_url": self.ws_url,
            "redis": {"address": f"127.0.0.1:{self.redis_port}"},
            "rtmp_port": self.go_rtmp,
            "whip_port": self.go_whip,
            "http_relay_port": free_port(),
            "health_port": free_port(),
            "logging": {"level": "info"},
            # It admits by the machine's idle CPU, sampled: at a cost of 0 it takes every session, so that what a
            # benchmark measures near saturation (sessions per machine) is its media path, not its admission.  Its
            # idle reserve must be tiny rather than 0: 0 counts as unset and becomes 0.3 of the cores
            # (pkg/stats/monitor.go, checkCPUConfig), which refused WHIP offers with 429 on a busy second.
            "cpu_cost": {
                "rtmp_cpu_cost": 0.0,
                "whip_cpu_cost": 0.0,
                "whip_bypass_transcoding_cpu_cost": 0.0,
                "min_idle_ratio": 0.001,
            },
            "rtc_config": {"use_external_ip": False, "udp_port": free_udp_port(), "enable_loopback_candidate": True},
        }
        env = dict(os.environ, INGRESS_CONFIG_BODY=yaml.safe_dump(go), PATH=f"{binary.parent}:{os.environ['PATH']}")
        self.go = self._spawn("go-ingress", [str(binary)], env)
        wait_until(lambda: listening(self.go_rtmp) and listening(self.go_whip), 30, "livekit/ingress")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
