"""Soak: two transcoded sessions for an hour — does anything grow?  (A benchmark for people, not a CI test.)

    .cache/venv/bin/python bench/soak.py --minutes 60 --every 30 --plot docs/soak.svg
    .cache/venv/bin/python bench/soak.py --smoke                          # CI: half a minute

Real peers: a local livekit-server, `pyingress serve` as a subprocess, two Debian ffmpeg encoders pushing a live
720p30 pattern and a tone over RTMP for the whole run, and one `livekit` SDK viewer per room holding the HIGH layer,
so that no layer is paused and every encoder works.  Every ``--every`` seconds, for pyingress's whole process tree
(the service, the zygote, both media workers): RSS, open file descriptors and threads, and the ingest → encoded
frame latency of the interval, p50 and p95 over every track, from the bucket counts of
``livekit_ingress_packet_latency_seconds`` on /metrics.  The table is printed as it goes; at the end, each column's
change from the end of the first quarter (start-up done) to the end, and the plot (SVG, no plotting library).
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procfs import open_fds, process_tree, rss_mb, threads
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

HIGH = 2
COLUMNS = ("RSS MB", "fds", "threads", "p50 ms", "p95 ms", "load")


@dataclass
class Sample:
    at: float  # seconds since the sessions settled
    rss: float
    fds: int
    threads: int
    p50: float  # -1: /metrics did not answer in time (a starved machine): no figure for the interval
    p95: float
    load: float  # the machine's 1-minute load average: what the latency columns are read against

    def values(self) -> tuple[float, ...]:
        return (self.rss, self.fds, self.threads, self.p50, self.p95, self.load)


def latency_buckets(port: int) -> dict[float, float]:
    """Cumulative counts per upper bound, summed over every track of every session."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "livekit_ingress_packet_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def percentile(before: dict[float, float], after: dict[float, float], fraction: float) -> float:
    """The bucket bound (ms) under which ``fraction`` of the interval's samples fell: LiveKit's buckets double, so
    this is a bound, not an estimate."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= fraction * total:
            return bound * 1000
    return bounds[-1] * 1000


def svg_plot(samples: list[Sample], path: Path) -> None:
    """One small chart per column over time, side by side: enough to see a line that is not flat."""
    width, height, pad = 220, 140, 28
    charts = []
    for index, name in enumerate(COLUMNS):
        values = [s.values()[index] for s in samples]
        top = max(values) * 1.1 or 1.0
        last = samples[-1].at or 1.0
        points = " ".join(
            f"{pad + (s.at / last) * (width - 2 * pad):.1f},{height - pad - (v / top) * (height - 2 * pad):.1f}"
            for s, v in zip(samples, values, strict=True)
        )
        x = index * width
        charts.append(
            f'<g transform="translate({x},0)"><rect x="{pad}" y="{pad}" width="{width - 2 * pad}" '
            f'height="{height - 2 * pad}" fill="none" stroke="#ccc"/>'
            f'<text x="{pad}" y="{pad - 8}" font-size="12">{name} (max {max(values):.0f})</text>'
            f'<text x="{pad}" y="{height - 8}" font-size="10">0 … {last / 60:.0f} min</text>'
            f'<polyline points="{points}" fill="none" stroke="#1f6feb" stroke-width="1.5"/></g>'
        )
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(COLUMNS)}" height="{height}">'
        + "".join(charts)
        + "</svg>\n"
    )


async def soak(minutes: float, every: float, work: Path, width: int, height: int) -> list[Sample]:
    (work / "livekit").mkdir()
    livekit = LivekitPeer(work / "livekit").start()
    metrics_port = free_port()
    peer = PyingressPeer(work / "pyingress", livekit.ws_url, {"prometheus_port": metrics_port}).start()
    assert peer.process is not None
    encoders = []
    try:
        async with api.LiveKitAPI(peer.http_url, livekit.api_key, livekit.api_secret) as client:
            viewers = []
            for n in range(2):
                room = f"soak-{n}"
                info = await client.ingress.create_ingress(
                    CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, room_name=room, participant_identity=room)
                )
                pattern = TestPattern(width=width, height=height, duration=minutes * 60 + 120)
                encoders.append(start_ffmpeg(pattern, f"{info.url}/{info.stream_key}", work / f"ffmpeg-{n}.log"))
                viewer = await RoomSubscriber(livekit.ws_url, livekit.token(f"viewer-{n}", room)).__aenter__()
                viewers.append(viewer)
                await viewer.video_sizes(room, HIGH, frames=30, settle=1.0, timeout=60)
            print(f"{'t (s)':>7} " + " ".join(f"{c:>9}" for c in COLUMNS), flush=True)
            samples: list[Sample] = []
            began = time.monotonic()
            before = latency_buckets(metrics_port)
            while True:
                await asyncio.sleep(every)
                tree = process_tree(peer.process.pid)
                try:
                    after: dict[float, float] | None = latency_buckets(metrics_port)
                except OSError as error:  # URLError and timeouts: the interval goes without a latency figure
                    print(f"  /metrics did not answer: {error}", flush=True)
                    after = None
                sample = Sample(
                    time.monotonic() - began,
                    sum(rss_mb(p) for p in tree),
                    sum(open_fds(p) for p in tree),
                    sum(threads(p) for p in tree),
                    percentile(before, after, 0.5) if after is not None else -1,
                    percentile(before, after, 0.95) if after is not None else -1,
                    os.getloadavg()[0],
                )
                before = after if after is not None else before
                samples.append(sample)
                print(f"{sample.at:7.0f} " + " ".join(f"{v:9.1f}" for v in sample.values()), flush=True)
                if sample.at >= minutes * 60:
                    break
            for viewer in viewers:
                await viewer.__aexit__(None, None, None)
        return samples
    finally:
        for encoder in encoders:
            encoder.kill()
            encoder.wait()
        peer.stop()
        livekit.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--plot", type=Path, help="write the SVG here")
    parser.add_argument("--smoke", action="store_true", help="CI: half a minute, a sample every 5 s")
    parser.add_argument("--size", default="1280x720", help="the encoders' picture (the default preset's ladder)")
    options = parser.parse_args()
    if options.smoke:
        options.minutes, options.every = 0.5, 5.0
    with tempfile.TemporaryDirectory(prefix="pyingress-soak-") as work:
        width, height = (int(n) for n in options.size.split("x"))
        samples = asyncio.run(soak(options.minutes, options.every, Path(work), width, height))
    if len(samples) >= 4:
        settled, last = samples[len(samples) // 4], samples[-1]
        change = ", ".join(
            f"{name} {b - a:+.1f}" for name, a, b in zip(COLUMNS, settled.values(), last.values(), strict=True)
        )
        print(f"from {settled.at:.0f} s to the end: {change}")
    if options.plot and samples:
        svg_plot(samples, options.plot)
        print(f"plot: {options.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
