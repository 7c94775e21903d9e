"""livekit mode benchmark: pyingress and livekit/ingress as workers of one livekit-server v1.13.5, in the same run.

Per worker (pyingress in ``mode: livekit``; livekit/ingress v1.5.0 from ../shared/tools when it is there):

- **publish → BUFFERING seen**: an RTMP client (our sans-IO client) connects and publishes a fresh ingress's stream
  key; a poller asks livekit-server's ``ListIngress`` every 2 ms until it shows BUFFERING.  Printed from the
  ``publish`` command leaving the client, and from the worker's ``NetStream.Publish.Start`` (negative: BUFFERING
  was already stored when the publish was accepted — both workers store it before accepting).  Goal p95 ≤ 100 ms.
- **idle CPU**: the worker's process tree, bus connected and no session, over ``--idle`` seconds.  Goal ≤ 1 %.

And the bus itself: the psrpc round trip of ``IOInfo.GetIngressInfo`` from our client to livekit-server (Request
→ claim → choice → Response over Redis), p50/p95, beside livekit-server's own API latency for the same lookup
(``ListIngress`` by id over Twirp/HTTP, the ``livekit-api`` client).

    .cache/venv/bin/python bench/psrpc_latency.py             # 30 publishes per worker, 300 round trips, 20 s idle
    .cache/venv/bin/python bench/psrpc_latency.py --smoke     # 5 publishes, 50 round trips, 5 s idle (CI)
    .cache/venv/bin/python bench/psrpc_latency.py --no-go     # pyingress only

The machine is shared (2 cores); figures under load are upper bounds of what a dedicated host sees.  livekit/ingress
refuses sessions while it measures too little idle CPU on the machine: refusals are counted, not timed.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput, IngressState, ListIngressRequest

from pyingress.config import RedisConfig
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.methods import GET_INGRESS_INFO
from pyingress.control.psrpc.redis_bus import RedisBus
from pyingress.control.psrpc.rpc import RpcClient
from pyingress.ingest.rtmp.client import RtmpClientConnection, StatusReceived
from pyingress.media.latency import percentile
from tests.harness.go_ingress_peer import SHIPPED, GoIngressPeer
from tests.harness.livekit_cluster import LivekitCluster

BUFFERING = IngressState.ENDPOINT_BUFFERING


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"p50 {percentile(ordered, 0.5):6.1f}  p95 {percentile(ordered, 0.95):6.1f}  max {ordered[-1]:6.1f} ms"


async def _poll_buffering(lk: api.LiveKitAPI, ingress_id: str, timeout_s: float = 10.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = await lk.ingress.list_ingress(ListIngressRequest(ingress_id=ingress_id))
        if listed.items and listed.items[0].state.status == BUFFERING:
            return time.monotonic()
        await asyncio.sleep(0.002)
    raise TimeoutError(f"{ingress_id} never BUFFERING")


async def _publish_once(lk: api.LiveKitAPI, port: int, name: str) -> tuple[float, float] | None:
    """(publish sent → BUFFERING seen, accepted → BUFFERING seen) in ms, or None when the worker refused."""
    info = await lk.ingress.create_ingress(
        CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, name=name, room_name=name, participant_identity=name)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = RtmpClientConnection("live", f"rtmp://127.0.0.1:{port}/live")
    sent_at = accepted_at = 0.0
    poller: asyncio.Task[float] | None = None
    try:
        writer.write(client.data_to_send())
        client_started = False
        while accepted_at == 0.0:
            data = await asyncio.wait_for(reader.read(65536), 15)
            if not data:
                return None
            client.receive_data(data)
            if client.connected and not client_started:
                client.start_publish(info.stream_key)
                client_started = True
            out = client.data_to_send()
            if out:
                if client.stream_id and sent_at == 0.0:
                    sent_at = time.monotonic()  # this write carries the publish command
                    poller = asyncio.create_task(_poll_buffering(lk, info.ingress_id))
                writer.write(out)
            for event in client.events():
                if isinstance(event, StatusReceived):
                    if event.code == "NetStream.Publish.Start":
                        accepted_at = time.monotonic()
                    elif event.level == "error":
                        return None
        assert poller is not None
        seen_at = await poller
        return (seen_at - sent_at) * 1000, (seen_at - accepted_at) * 1000
    finally:
        if poller is not None and not poller.done():
            poller.cancel()
        writer.close()
        await lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=info.ingress_id))


async def publish_latencies(lk: api.LiveKitAPI, port: int, label: str, runs: int) -> dict[str, Any]:
    sent, accepted, refused = [], [], 0
    for index in range(runs):
        result = await _publish_once(lk, port, f"bench-{label}-{index}-{os.getpid()}")
        if result is None:
            refused += 1
        else:
            sent.append(result[0])
            accepted.append(result[1])
        await asyncio.sleep(0.3)
    return {"publish_to_buffering_ms": sent, "accepted_to_buffering_ms": accepted, "refused": refused}


async def round_trips(cluster: LivekitCluster, lk: api.LiveKitAPI, count: int) -> dict[str, list[float]]:
    info = await lk.ingress.create_ingress(
        CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, name="rt", room_name="rt", participant_identity="rt")
    )
    bus = RedisBus.from_config(RedisConfig(address=cluster.redis.address))
    await bus.start()
    client = RpcClient(bus, "IOInfo")
    client.start()
    await bus.wait_connected(5)
    await bus.settled()
    psrpc_ms, api_ms = [], []
    try:
        request = messages.GetIngressInfoRequest(stream_key=info.stream_key)
        for _ in range(count):
            started = time.perf_counter()
            answer = await client.call(GET_INGRESS_INFO, request, messages.GetIngressInfoResponse)
            psrpc_ms.append((time.perf_counter() - started) * 1000)
            assert answer.info.ingress_id == info.ingress_id
            started = time.perf_counter()
            await lk.ingress.list_ingress(ListIngressRequest(ingress_id=info.ingress_id))
            api_ms.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
        await bus.close()
        await lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=info.ingress_id))
    return {"psrpc_get_ingress_info_ms": psrpc_ms, "livekit_api_list_ingress_ms": api_ms}


def _tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            todo.extend(int(child) for child in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


async def idle_cpu_percent(pid: int, seconds: float) -> float:
    before, started = _tree_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (_tree_cpu_seconds(pid) - before) / (time.monotonic() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="psrpc-bench-"))
    level = os.environ.get("BENCH_WORKER_LOG", "info")  # debug: the worker's own timeline in its log
    cluster = LivekitCluster(
        workdir, workers=1, worker_extra={"reconnect_grace_seconds": 0, "logging": {"level": level}}
    )
    await asyncio.to_thread(cluster.start)
    go: GoIngressPeer | None = None
    results: dict[str, Any] = {}
    try:
        if args.go:
            lkp = cluster.livekit
            go = GoIngressPeer(workdir / "go", lkp.ws_url, cluster.redis.address, lkp.api_key, lkp.api_secret)
            go.config["logging"] = {"level": "info"}
            await asyncio.to_thread(go.start)
        async with cluster.livekit.api() as lk:
            worker = cluster.workers[0]
            assert worker.process is not None
            results["pyingress_idle_cpu_percent"] = await idle_cpu_percent(worker.process.pid, args.idle)
            if go is not None and go.process is not None:
                results["livekit_ingress_idle_cpu_percent"] = await idle_cpu_percent(go.process.pid, args.idle)
            results["pyingress"] = await publish_latencies(lk, worker.rtmp_port, "py", args.publishes)
            if go is not None:
                results["livekit_ingress"] = await publish_latencies(lk, go.rtmp_port, "go", args.publishes)
            results["bus"] = await round_trips(cluster, lk, args.round_trips)
    finally:
        if go is not None:
            await asyncio.to_thread(go.stop)
        await asyncio.to_thread(cluster.stop)
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    for key, label in (("pyingress", "pyingress"), ("livekit_ingress", "livekit/ingress")):
        if key not in results:
            continue
        r = results[key]
        lines.append(f"{label}: publish sent → BUFFERING seen in livekit-server's ListIngress:")
        lines.append(f"    {_ms(r['publish_to_buffering_ms'])}   (n={len(r['publish_to_buffering_ms'])})")
        lines.append(f"  accepted → BUFFERING seen:  {_ms(r['accepted_to_buffering_ms'])}   refused: {r['refused']}")
    bus = results["bus"]
    lines.append("bus round trip, GetIngressInfo over psrpc (our client → livekit-server):")
    lines.append(f"    {_ms(bus['psrpc_get_ingress_info_ms'])}   (n={len(bus['psrpc_get_ingress_info_ms'])})")
    lines.append("livekit-server's own API, ListIngress by id over Twirp (livekit-api):")
    lines.append(f"    {_ms(bus['livekit_api_list_ingress_ms'])}")
    lines.append(f"idle worker CPU: pyingress {results['pyingress_idle_cpu_percent']:.2f} % of a core")
    if "livekit_ingress_idle_cpu_percent" in results:
        lines.append(f"                 livekit/ingress {results['livekit_ingress_idle_cpu_percent']:.2f} % of a core")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishes", type=int, default=30)
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement per worker")
    parser.add_argument("--smoke", action="store_true", help="a short run for CI")
    parser.add_argument("--no-go", dest="go", action="store_false", help="skip livekit/ingress")
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args()
    if args.smoke:
        args.publishes, args.round_trips, args.idle = 5, 50, 5.0
    if args.go and not SHIPPED.exists():
        print(f"livekit/ingress not found at {SHIPPED}: pyingress only")
        args.go = False
    results = asyncio.run(run(args))
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    ordered = sorted(results["pyingress"]["publish_to_buffering_ms"])
    if ordered:
        p95, median = percentile(ordered, 0.95), statistics.median(ordered)
        print(f"psrpc summary: pyingress publish → BUFFERING p95 {p95:.1f} ms, median {median:.1f} ms")


if __name__ == "__main__":
    main()
