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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from bench.sides import KEY, SECRET, Peers
from bench.whip import tree_cpu_seconds
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher


async def one(peers: Peers, side: str, transcoded: bool, seconds: float, name: str) -> dict[str, Any]:
    api_url, root_pid, ws_url = peers.api_url(side), peers.root_pid(side), peers.ws_url
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
                cpu_before, wall_before = tree_cpu_seconds(root_pid), time.monotonic()
                await asyncio.sleep(seconds)
                cpu = tree_cpu_seconds(root_pid) - cpu_before
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
