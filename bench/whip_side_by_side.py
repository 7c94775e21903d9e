"""WHIP side by side, one run: livekit/ingress (Go + GStreamer, ``../shared/tools/livekit-ingress/``) and pyingress,
both publishing into one livekit-server (with Redis, the original as its ingress worker), fed by the same aiortc
WHIP publisher (1280×720 30 fps VP8 at ~2.5 Mb/s + Opus, a pre-encoded loop), watched by the same subscriber.

Per side and repetition:

- **pass-through**: time from the publisher reading the 201 answer to the subscriber's first decoded frame;
- **transcoded** (``enable_transcoding``, default preset): the same, and CPU seconds per media second of the
  ingress's whole process tree (livekit/ingress's handler process and pyingress's media worker included) while
  the session plays for ``--seconds``.

    .cache/venv/bin/python bench/whip_side_by_side.py                  # 3 repetitions, 20 s transcoded each
    .cache/venv/bin/python bench/whip_side_by_side.py --reps 1 --seconds 8

Run from the checkout after ``./run test`` (the Go binary is unpacked into .cache/livekit-ingress/ as
``run-side-by-side`` does; it needs Debian's GStreamer plugins, which the test set-up installs).
"""

import argparse
import asyncio
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from bench.whip import tree_cpu_seconds
from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import wait_until
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO.parent / "shared" / "tools" / "livekit-ingress"
KEY, SECRET = "devkey", "secretsecretsecretsecretsecret00"


def go_binary() -> Path:
    target = REPO / ".cache" / "livekit-ingress" / "ingress"
    source = TOOLS / "ingress.gz"
    if not target.exists() or source.stat().st_mtime > target.stat().st_mtime:
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(source) as packed, target.open("wb") as out:
            shutil.copyfileobj(packed, out)
        target.chmod(0o755)
    return target


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class Peers:
    """Redis, livekit-server with livekit/ingress as its worker, and pyingress standalone, in ``work``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_port, self.lk_port = free_port(), free_port()
        self.go_whip, self.py_http = free_port(), free_port()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work)
        self.procs.append(proc)
        return proc

    def start(self) -> "Peers":
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""])
        wait_until(lambda: _listening(self.redis_port), 20, "redis")
        lk = {
            "port": self.lk_port,
            "rtc": {"tcp_port": free_port(), "udp_port": free_udp_port(), "use_external_ip": False},
            "redis": {"address": f"127.0.0.1:{self.redis_port}"},
            "keys": {KEY: SECRET},
            "ingress": {"whip_base_url": f"http://127.0.0.1:{self.go_whip}/w"},
        }
        (self.work / "lk.yaml").write_text(yaml.safe_dump(lk))
        self._spawn("livekit", [str(REPO / ".cache/bin/server"), "--dev", "--config", "lk.yaml", "--bind", "127.0.0.1"])
        wait_until(lambda: _listening(self.lk_port), 30, "livekit-server")
        binary = go_binary()
        go = {
            "api_key": KEY,
            "api_secret": SECRET,
            "ws_url": f"ws://127.0.0.1:{self.lk_port}",
            "redis": {"address": f"127.0.0.1:{self.redis_port}"},
            "rtmp_port": free_port(),
            "whip_port": self.go_whip,
            "http_relay_port": free_port(),
            "logging": {"level": "info"},
            "cpu_cost": {"whip_cpu_cost": 0.0, "whip_bypass_transcoding_cpu_cost": 0.0, "min_idle_ratio": 0.0},
            "rtc_config": {"use_external_ip": False, "udp_port": free_udp_port(), "enable_loopback_candidate": True},
        }
        env = dict(os.environ, INGRESS_CONFIG_BODY=yaml.safe_dump(go), PATH=f"{binary.parent}:{os.environ['PATH']}")
        self.go = self._spawn("go-ingress", [str(binary)], env)
        wait_until(lambda: _listening(self.go_whip), 30, "livekit/ingress")
        py = {
            "api_key": KEY,
            "api_secret": SECRET,
            "ws_url": f"ws://127.0.0.1:{self.lk_port}",
            "bind_address": "127.0.0.1",
            "whip_port": self.py_http,
            "rtmp_port": -1,
            "srt_port": -1,
            "store_path": str(self.work / "py.sqlite3"),
            "rtc_config": {"enable_loopback_candidate": True},
            "logging": {"level": "warn"},
            "cpu_cost": {"whip_cpu_cost": 0.1, "min_idle_ratio": 0.0},
        }
        (self.work / "py.yaml").write_text(yaml.safe_dump(py))
        self.py = self._spawn("pyingress", [sys.executable, "-m", "pyingress", "serve", "--config", "py.yaml"])
        wait_until(lambda: _listening(self.py_http), 60, "pyingress")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def one(peers: Peers, side: str, transcoded: bool, seconds: float, name: str) -> dict[str, Any]:
    api_url = f"http://127.0.0.1:{peers.lk_port}" if side == "go" else f"http://127.0.0.1:{peers.py_http}"
    root = peers.go if side == "go" else peers.py
    ws_url = f"ws://127.0.0.1:{peers.lk_port}"
    async with api.LiveKitAPI(api_url, KEY, SECRET) as client:
        info = await client.ingress.create_ingress(
            CreateIngressRequest(
                input_type=IngressInput.WHIP_INPUT,
                name=name,
                room_name=name,
                participant_identity=f"ing-{name}",
                enable_transcoding=transcoded,
            )
        )
    token = api.AccessToken(KEY, SECRET).with_identity("viewer")
    token = token.with_grants(api.VideoGrants(room_join=True, room=name, can_publish=False)).to_jwt()
    result: dict[str, Any] = {}
    async with RoomSubscriber(ws_url, token) as viewer:
        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", peers.work, video="vp8", bitrate="2500k")
        try:
            response = await publisher.start()
            if response.status != 201:
                return {"error": f"{response.status} {response.body[:200]}"}
            frame_at, frame = await viewer.first_video_frame(f"ing-{name}", timeout=40)
            result["first_frame_s"] = round(frame_at - publisher.answer_received_at, 3)
            result["size"] = f"{frame.width}x{frame.height}"
            if transcoded:
                await asyncio.sleep(2)
                cpu_before, wall_before = tree_cpu_seconds(root.pid), time.monotonic()
                await asyncio.sleep(seconds)
                cpu = tree_cpu_seconds(root.pid) - cpu_before
                result["cpu_per_media_s"] = round(cpu / (time.monotonic() - wall_before), 3)
        finally:
            await publisher.stop()
    await asyncio.sleep(7)  # both end their sessions (pyingress after its reconnect grace)
    return result


async def run(reps: int, seconds: float, work: Path) -> dict[str, list[dict[str, Any]]]:
    peers = Peers(work).start()
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for rep in range(reps):
            for transcoded in (False, True):
                for side in ("go", "py"):
                    mode = "transcoded" if transcoded else "passthrough"
                    res = await one(peers, side, transcoded, seconds, f"{side}-{mode}-{rep}")
                    results.setdefault(f"{side} {mode}", []).append(res)
                    print(side, mode, rep, res, flush=True)
    finally:
        peers.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whip-sxs-") as tmp:
        results = asyncio.run(run(args.reps, args.seconds, Path(tmp)))
    print("== medians ==")
    for key, runs in results.items():
        firsts = [r["first_frame_s"] for r in runs if "first_frame_s" in r]
        cpus = [r["cpu_per_media_s"] for r in runs if "cpu_per_media_s" in r]
        line = f"{key:>16}: first frame {statistics.median(firsts):.3f} s" if firsts else f"{key:>16}: no frame"
        if cpus:
            line += f", CPU {statistics.median(cpus):.3f} CPU-s/s"
        print(line)
    go_cpu = [r.get("cpu_per_media_s") for r in results.get("go transcoded", [])]
    py_cpu = [r.get("cpu_per_media_s") for r in results.get("py transcoded", [])]
    ratios = [p / g for p, g in zip(py_cpu, go_cpu, strict=False) if p and g]
    if ratios:
        print(f"transcoded CPU py/go per rep: {[round(r, 3) for r in ratios]}, median {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
