"""WHIP side by side, one run: livekit/ingress (Go + GStreamer, ``../shared/tools/livekit-ingress/``) and pyingress,
both publishing into one livekit-server (with Redis, the original as its ingress worker), fed by the same aiortc
WHIP publisher (1280×720 30 fps VP8, or H.264 with ``--codec h264``, at ~2.5 Mb/s + Opus, a pre-encoded loop:
the same bytes for both sides),
watched by the same subscriber.

Per side and repetition:

- **pass-through**: time from the publisher reading the 201 answer to the subscriber's first decoded frame;
- **transcoded** (``enable_transcoding``, default preset): the same, and CPU seconds per media second of the
  ingress's whole process tree (livekit/ingress's handler process and pyingress's media worker included) while
  the session plays for ``--seconds``.

Which side goes first alternates from one repetition to the next.  Every figure is printed with the 1-minute load
average and the machine's busy cores while it was taken (the machine is shared: CPU ratios need a quiet one).

Two things about livekit/ingress shape how the bench drives it:

- **Admission.**  It takes a session only if the machine's idle CPU over the last second (/proc/stat) is above its
  reserve: ``min_idle_ratio`` (0 in its config counts as unset and becomes 0.3, pkg/stats/monitor.go
  checkCPUConfig), halved for a WHIP session, i.e. 0.3 of 2 cores.  On a busy shared machine it answers
  ``429 server capacity exceeded``.  The bench encodes the clips before anything starts, waits for a second with
  IDLE_WANTED idle cores before every offer, and retries a 429 on a fresh ingress.
- **Transcoded A/V start race (its bug).**  Its handler takes the first relayed timestamp of whichever track it
  reads first as time zero for both (pkg/media/whip/whipsrc.go ``getCorrctedTimestamp``).  Each track's first
  timestamp comes from when the WHIP process's goroutine for that track read its first packet (the synchronizer
  starts at ``time.Now()``); those goroutines are started from a Go map (pkg/whip/whip_handler.go ``runSession``),
  so which track gets the smaller first timestamp is decided by map order and scheduling, well under a
  millisecond apart.  When the track read first by the handler is the later one, the other's first timestamp is
  negative and pkg/media/whip/appsrc.go casts it to a ``gst.ClockTime`` (~2^64 ns).  For video the decoder then
  reports "decreasing timestamp" and repeats that PTS, and videorate's ``g_assert (GST_BUFFER_DURATION (outbuf)
  != 0)`` (gstvideorate.c:741, GStreamer 1.22) aborts the handler ("unknown handler exit code … signal: aborted"),
  or the pipeline freezes: the session never shows a frame.  No publisher can rule it out.  Sending audio first
  (VIDEO_DELAY) makes it less likely, since both maps are then filled audio first and Go's small maps mostly
  iterate in insertion order: on this shared machine 8 of 11 transcoded attempts died without a lead, 3 of 8 with
  a 100 ms lead, none of 12 with a 50 ms lead (though one of those 12 stalled another way: its handler never
  opened the audio relay).  That rarer stall is its own too: the handler opens one track's relay and never asks
  for the other's, so no GStreamer pipeline starts (60 s later the WHIP side logs "no media received after
  timeout").  A failed attempt is retried on a fresh ingress and counted, with its cause from the log.  A peer
  process that dies (on this shared machine, someone else's clean-up can kill it) is restarted with the others.

    .cache/venv/bin/python bench/whip_side_by_side.py                  # 3 repetitions, 20 s transcoded each
    .cache/venv/bin/python bench/whip_side_by_side.py --reps 1 --seconds 8
    .cache/venv/bin/python bench/whip_side_by_side.py --work /tmp/sxs  # keep clips and peers-N/ logs
    .cache/venv/bin/python bench/whip_side_by_side.py --codec h264     # an H.264 publisher (as OBS sends)

Run from the checkout after ``./run test`` (the Go binary is unpacked into .cache/livekit-ingress/ as
``run-side-by-side`` does; it needs Debian's GStreamer plugins, which the test set-up installs).  Exit status 1 if
some side and mode got no figure at all.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from bench.sides import KEY, SECRET, Peers, go_available
from bench.whip import tree_cpu_seconds
from tests.harness.processes import PeerError
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher, encode_audio, encode_video

SIZE, BITRATE = (1280, 720), "2500k"
CODECS = ("vp8", "h264")
FIRST_FRAME_TIMEOUT = 20.0
ATTEMPTS = 6
IDLE_WANTED = 0.6  # cores idle over one second before an offer: twice livekit/ingress's WHIP admission reserve
IDLE_WAIT = 60.0  # at most this long per offer; then the offer goes anyway
SESSION_GAP = 7.0  # both ingresses end the previous session (pyingress after its reconnect grace)
VIDEO_DELAY = 0.05  # the publisher's first video frame this long after its first audio frame (both sides alike)


def cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (os.cpu_count() or 1) * (1 - (after[0] - before[0]) / total) if total > 0 else 0.0


async def idle_second() -> float:
    before = cpu_times()
    await asyncio.sleep(1.0)
    return (os.cpu_count() or 1) - busy_cores(before, cpu_times())


async def wait_for_idle() -> float:
    """Wait (bounded) for a second in which the machine has IDLE_WANTED cores idle; the last second's idle cores."""
    deadline = time.monotonic() + IDLE_WAIT
    idle = await idle_second()
    while idle < IDLE_WANTED and time.monotonic() < deadline:
        idle = await idle_second()
    return idle


def load1() -> float:
    return round(os.getloadavg()[0], 2)


async def create(peers: Peers, side: str, transcoded: bool, name: str) -> Any:
    async with api.LiveKitAPI(peers.api_url(side), KEY, SECRET) as client:
        return await client.ingress.create_ingress(
            CreateIngressRequest(
                input_type=IngressInput.WHIP_INPUT,
                name=name,
                room_name=name,
                participant_identity=f"ing-{name}",
                enable_transcoding=transcoded,
            )
        )


FAILURE_MARKS = (  # what livekit/ingress logs when a transcoded WHIP session dies (see the module's docstring)
    ("gstvideorate.c", "handler aborted: videorate assertion, duration 0 (negative start timestamp)"),
    ("pipeline frozen", "handler pipeline frozen"),
    ("signal: aborted", "handler aborted"),
)


def log_size(peers: Peers, side: str) -> int:
    path = peers.work / ("go-ingress.log" if side == "go" else "pyingress.log")
    return path.stat().st_size if path.exists() else 0


def why_no_frame(peers: Peers, side: str, since: int, transcoded: bool) -> str:
    """The first known failure that the side's log shows after byte ``since``."""
    path = peers.work / ("go-ingress.log" if side == "go" else "pyingress.log")
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
        for mark, reason in FAILURE_MARKS:
            if mark in text:
                return reason
        if side == "go" and transcoded and "starting GST pipeline" not in text:
            return "handler never started its pipeline (it opened one track's relay, never the other's)"
    return "no video frame"


async def attempt(
    peers: Peers, clips: Path, side: str, transcoded: bool, seconds: float, name: str, audio: bool, codec: str
) -> dict[str, Any]:
    """One session on a new ingress and room: publish after an idle second, time the first frame and, transcoded,
    the CPU of the side's process tree.  ``refused`` (429) or ``failed`` (no frame) when it did not get that far."""
    root_pid = peers.root_pid(side)
    info = await create(peers, side, transcoded, name)
    grants = api.VideoGrants(room_join=True, room=name, can_publish=False)
    token = api.AccessToken(KEY, SECRET).with_identity("viewer").with_grants(grants).to_jwt()
    result: dict[str, Any] = {}
    async with RoomSubscriber(peers.ws_url, token) as viewer:
        result["idle_before_offer"] = round(await wait_for_idle(), 2)
        result["load1_at_offer"] = load1()
        since = log_size(peers, side)
        publisher = WhipPublisher(
            f"{info.url}/{info.stream_key}",
            clips,
            video=codec,
            audio=audio,
            size=SIZE,
            bitrate=BITRATE,
            video_delay=VIDEO_DELAY,
        )
        response = await publisher.start()
        if response.status != 201:
            key = "refused" if response.status == 429 else "error"
            result[key] = f"{response.status} {response.body.strip()[:200]}"
            return result
        try:
            try:
                frame_at, frame = await viewer.first_video_frame(f"ing-{name}", timeout=FIRST_FRAME_TIMEOUT)
            except (TimeoutError, AssertionError):  # no frame in time / the track ended before its first frame
                await asyncio.sleep(0.5)  # the side's log catches up
                result["failed"] = why_no_frame(peers, side, since, transcoded)
                return result
            result["first_frame_s"] = round(frame_at - publisher.answer_received_at, 3)
            result["size"] = f"{frame.width}x{frame.height}"
            if transcoded:
                await asyncio.sleep(2)  # past the start-up of the decoder and encoders
                cpu_before, machine_before, wall_before = tree_cpu_seconds(root_pid), cpu_times(), time.monotonic()
                await asyncio.sleep(seconds)
                cpu = tree_cpu_seconds(root_pid) - cpu_before
                wall = time.monotonic() - wall_before
                busy = busy_cores(machine_before, cpu_times())
                result["cpu_per_media_s"] = round(cpu / wall, 3)
                result["others_busy_cores"] = round(max(0.0, busy - cpu / wall), 2)
                result["load1"] = load1()
        finally:
            await publisher.stop()
            await asyncio.sleep(SESSION_GAP)
    return result


async def session(
    peers: Peers, clips: Path, side: str, transcoded: bool, seconds: float, name: str, audio: bool, codec: str
) -> dict[str, Any]:
    """Attempts until one gives figures (at most ATTEMPTS): a refusal for CPU or a session that never shows a frame
    is retried on a fresh ingress, and counted."""
    failures: list[str] = []
    result: dict[str, Any] = {}
    for number in range(1, ATTEMPTS + 1):
        result = await attempt(peers, clips, side, transcoded, seconds, f"{name}-{number}", audio, codec)
        reason = result.get("refused") or result.get("failed")
        if reason is None:
            break
        failures.append(reason)
        print(f"  {side} {name} attempt {number}: {reason}", flush=True)
    result["attempts"] = number
    if failures:
        result["failures"] = failures
    return result


def prepare_clips(work: Path, audio: bool, codec: str) -> None:
    """Encode the publisher's clips now, so that no encoder runs while either ingress samples its idle CPU."""
    encode_video(work, codec, *SIZE, bitrate=BITRATE)
    if audio:
        encode_audio(work, 2)


def start_peers(work: Path) -> Peers:
    """Peers in a new directory under ``work``.  They pick free ports and bind them later; on this shared machine
    another run can take one in between, so a failed start is tried again with other ports."""
    for tries in range(1, 4):
        directory = work / f"peers-{sum(1 for _ in work.glob('peers-*')) + 1}"
        directory.mkdir()
        peers = Peers(directory)
        try:
            return peers.start()
        except PeerError as error:
            peers.stop()
            if tries == 3:
                raise
            print(f"peers did not start ({str(error).splitlines()[0]}); again with other ports", flush=True)
    raise AssertionError("unreachable")


def dead(peers: Peers) -> list[str]:
    names = {peers.go: "livekit/ingress", peers.py: "pyingress"}
    return [f"{names.get(p, 'a peer')} exited {p.returncode}" for p in peers.procs if p.poll() is not None]


async def run(reps: int, seconds: float, work: Path, audio: bool, codec: str) -> dict[str, list[dict[str, Any]]]:
    prepare_clips(work, audio, codec)
    peers = start_peers(work)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for rep in range(reps):
            for transcoded in (False, True):
                mode = "transcoded" if transcoded else "passthrough"
                for side in ("go", "py") if rep % 2 == 0 else ("py", "go"):
                    name = f"{side}-{mode}-{rep}"
                    res: dict[str, Any] = {"error": "a peer process died twice"}
                    for _ in range(2):  # a peer that died (killed on this shared machine, or crashed) is restarted
                        if dead(peers):
                            print(f"peers restarted: {', '.join(dead(peers))} (logs in {peers.work})", flush=True)
                            peers.stop()
                            peers = start_peers(work)
                        try:
                            res = await session(peers, work, side, transcoded, seconds, name, audio, codec)
                            break
                        except (aiohttp.ClientError, OSError):
                            if not dead(peers):
                                raise
                    results.setdefault(f"{side} {mode}", []).append(res)
                    print(f"{side} {mode} rep {rep}: {res}", flush=True)
    finally:
        peers.stop()
    return results


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["== medians (load1: 1-minute load average when measured; others: busy cores outside the measured tree) =="]
    for key, runs in results.items():
        firsts = [r["first_frame_s"] for r in runs if "first_frame_s" in r]
        first = median(firsts)
        line = f"{key:>16}: " + (f"first frame {first:.3f} s" if first is not None else "no frame")
        line += f" ({len(firsts)}/{len(runs)} sessions)"
        cpu = median([r["cpu_per_media_s"] for r in runs if "cpu_per_media_s" in r])
        if cpu is not None:
            others = median([r["others_busy_cores"] for r in runs if "others_busy_cores" in r]) or 0.0
            line += f", CPU {cpu:.3f} CPU-s per media s (others {others:.2f} cores)"
        loads = [r.get("load1", r.get("load1_at_offer")) for r in runs]
        line += f", load1 {median([x for x in loads if x is not None]) or 0:.2f}"
        failures = [reason for r in runs for reason in r.get("failures", [])]
        failures += [r["error"] for r in runs if "error" in r]
        if failures:
            counts = {reason: failures.count(reason) for reason in failures}
            line += f"; failed attempts: {', '.join(f'{n}× {reason}' for reason, n in counts.items())}"
        lines.append(line)

    def paired(mode: str, field: str) -> list[tuple[float, float]]:
        go, py = results.get(f"go {mode}", []), results.get(f"py {mode}", [])
        return [(p[field], g[field]) for p, g in zip(py, go, strict=False) if field in p and field in g]

    cpu_pairs = paired("transcoded", "cpu_per_media_s")
    if cpu_pairs:
        ratios = [p / g for p, g in cpu_pairs]
        ratio = statistics.median(ratios)
        verdict = "met" if ratio <= 0.75 else "NOT met"
        lines.append(f"transcoded CPU py/go per rep: {[round(r, 3) for r in ratios]}, median {ratio:.3f}")
        lines.append(f"  goal ≤ 0.75: {verdict}")
    else:
        lines.append("transcoded CPU py/go: no pair of measurements")
    for mode in ("passthrough", "transcoded"):
        pairs = paired(mode, "first_frame_s")
        if not pairs:
            lines.append(f"{mode} first frame py vs go: no pair of measurements")
            continue
        py_first = statistics.median(p for p, _ in pairs)
        go_first = statistics.median(g for _, g in pairs)
        verdict = "met" if py_first <= 1.0 and py_first < go_first else "NOT met"
        lines.append(f"{mode} first frame py / go: {py_first:.3f} / {go_first:.3f} s, ratio {py_first / go_first:.3f}")
        lines.append(f"  goal ≤ 1.0 s and below go: {verdict}")
    lines.append(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return lines


@contextlib.contextmanager
def work_directory(path: str | None) -> Iterator[Path]:
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="whip-sxs-") as tmp:
        yield Path(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--work", help="directory for the peers' configs and logs, kept (default: a temporary one)")
    parser.add_argument(
        "--no-audio", action="store_true", help="video only (livekit/ingress's A/V start race can't hit)"
    )
    parser.add_argument("--codec", choices=CODECS, default="vp8", help="the publisher's video codec (default vp8)")
    args = parser.parse_args()
    if not go_available():
        print("livekit/ingress is not available here (../shared/tools/livekit-ingress/ingress.gz)", file=sys.stderr)
        return 2
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"publisher: {args.codec} {SIZE[0]}x{SIZE[1]} at {BITRATE}, audio {'off' if args.no_audio else 'Opus'}")
    with work_directory(args.work) as work:
        results = asyncio.run(run(args.reps, args.seconds, work, audio=not args.no_audio, codec=args.codec))
    for line in summary(results):
        print(line)
    complete = all(any("first_frame_s" in r for r in runs) for runs in results.values())
    return 0 if complete and len(results) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
