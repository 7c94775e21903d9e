"""pyingress itself as a subprocess (`python -m pyingress serve`) on free ports, as a user would run it."""

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.harness.livekit_peer import API_KEY, API_SECRET
from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import start_logged, stop, wait_until

REPO = Path(__file__).resolve().parents[2]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class PyingressPeer:
    def __init__(self, workdir: Path, ws_url: str, extra: dict[str, Any] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config: dict[str, Any] = _merge(
            {
                "api_key": API_KEY,
                "api_secret": API_SECRET,
                "ws_url": ws_url,
                "bind_address": "127.0.0.1",
                "public_host": "127.0.0.1",
                "rtmp_port": free_port(),
                "whip_port": free_port(),
                "srt_port": free_udp_port(),  # not SRT's 8890: several pyingress peers run at once
                "store_path": str(workdir / "pyingress.sqlite3"),
                "logging": {"level": "debug"},
            },
            extra or {},
        )
        self.config_path = workdir / "pyingress.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = workdir / "pyingress.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.config['whip_port']}"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.config['rtmp_port']}/live"

    @property
    def srt_port(self) -> int:
        return int(self.config["srt_port"])

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + "/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self) -> "PyingressPeer":
        self.process = start_logged(
            [sys.executable, "-m", "pyingress", "serve", "--config", str(self.config_path)],
            self.log_path,
            cwd=str(REPO),
        )
        wait_until(self._healthy, 60, "pyingress serve", self.process, self.log_path)
        return self

    def stop(self) -> None:
        # SIGINT stops at once (sessions end cleanly); SIGTERM would drain, waiting for every publisher to leave.
        stop(self.process, sig=signal.SIGINT)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
