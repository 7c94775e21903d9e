"""livekit/ingress itself — the Go + GStreamer original pyingress replaces — as livekit-server's worker.

Its admission measures the machine's idle CPU (system-wide here: no cgroup limits) and refuses a session when
too little is idle, whatever its configured costs; on a loaded 2-core machine a publisher may have to try again,
as a real encoder does.

The binary is ../shared/tools/livekit-ingress/ingress.gz (livekit/ingress v1.5.0 built for this machine, see its
README), unpacked once into .cache/livekit-ingress/ingress.  It starts its per-session handler as
``ingress run-handler``, so its directory goes first on its PATH.  Its CPU costs are set low: its defaults would
refuse every session on a 2-core machine.
"""

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from tests.harness.ports import free_port
from tests.harness.processes import PeerError, start_logged, stop, tcp_open, wait_until

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO.parent / "shared" / "tools" / "livekit-ingress" / "ingress.gz"
BINARY = REPO / ".cache" / "livekit-ingress" / "ingress"
MONITOR_WARMUP_S = 3.0


def go_ingress_binary() -> Path:
    if not SHIPPED.exists():
        raise PeerError(f"livekit/ingress not found at {SHIPPED} (see ../shared/tools/livekit-ingress/README.md)")
    if not BINARY.exists() or SHIPPED.stat().st_mtime > BINARY.stat().st_mtime:
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(SHIPPED, "rb") as packed, open(BINARY, "wb") as out:
            shutil.copyfileobj(packed, out)
        BINARY.chmod(0o755)
    return BINARY


class GoIngressPeer:
    def __init__(
        self, workdir: Path, ws_url: str, redis_address: str, api_key: str, api_secret: str, url_cpu_cost: float = 0.1
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.rtmp_port, self.whip_port = free_port(), free_port()
        self.config = {
            "api_key": api_key,
            "api_secret": api_secret,
            "ws_url": ws_url,
            "redis": {"address": redis_address},
            "rtmp_port": self.rtmp_port,
            "whip_port": self.whip_port,
            "http_relay_port": free_port(),
            "health_port": free_port(),
            "logging": {"level": "debug"},
            # It admits a push by the machine's idle CPU, sampled: at a cost of 0 a test machine busy with other
            # work cannot make it refuse ("server capacity exceeded"), which is not what the tests are about.
            "cpu_cost": {"rtmp_cpu_cost": 0.0, "url_cpu_cost": url_cpu_cost, "min_idle_ratio": 0.0},
            "rtc_config": {"use_external_ip": False},
        }
        self.log_path = workdir / "livekit-ingress.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "GoIngressPeer":
        binary = go_ingress_binary()
        env = {
            "INGRESS_CONFIG_BODY": yaml.safe_dump(self.config),
            "PATH": f"{binary.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        self.process = start_logged([str(binary)], self.log_path, env=env, cwd=str(self.workdir))
        wait_until(lambda: tcp_open(self.rtmp_port), 60, "livekit/ingress", self.process, self.log_path)
        # Its CPU monitor reports no idle CPU until its first sample: it refuses every session until then.
        time.sleep(MONITOR_WARMUP_S)
        return self

    def stop(self) -> None:
        stop(self.process)
        self.process = None

    def rtmp_url(self, stream_key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{stream_key}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
