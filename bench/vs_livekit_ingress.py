"""pyingress against livekit/ingress itself, side by side in one run, on every figure issue 17 names.

One livekit-server, the original (``../shared/tools/livekit-ingress/``: Go + GStreamer, built from its source) as its
worker over Redis, pyingress standalone into the same server.  Both get the same RTMP bytes: a test pattern (testsrc2
+ a 440 Hz tone) encoded once by Debian ffmpeg (x264 veryfast/zerolatency, GOP 2 s, AAC) and pushed with
``ffmpeg -re -c copy``, so no encoder competes with the ingresses for the 2 cores.  Both are watched by the same
LiveKit SDK viewers, in this process.  Scenarios:

- ``720p``: 1280×720 → default preset (3 layers), three viewers (HIGH, MEDIUM, LOW);
- ``1080p``: 1920×1080 → ``H264_1080P_30FPS_3_LAYERS``, one viewer (HIGH);
- ``unwatched``: 720p, nobody in the room, 60 s;
- ``four``: four 720p sessions at once, a LOW viewer each (memory of four sessions);
- ``density``: 1, 2, 3 … 720p sessions at once, a LOW viewer each, until a viewer gets fewer than 29 of the 30
  frames a second over the last 60 s of a 66 s run (frames dropped or late): the most sessions each held.

Per run: CPU seconds of the ingress's whole process tree while streaming (livekit/ingress's handlers and pyingress's
zygote and media workers included), ffmpeg spawned → first decoded frame at the first viewer, peak RSS of the tree
(summed, so a page shared by processes counts once per process) and peak PSS (each shared page divided among its
processes: what the tree holds), frames a second per viewer.  Ratios are pyingress / livekit-ingress, repetition by
repetition, then their median.  Without the original's binary the script says so and measures pyingress alone.

    .cache/venv/bin/python bench/vs_livekit_ingress.py                         # everything, ≈ 30 min
    .cache/venv/bin/python bench/vs_livekit_ingress.py --only 720p,unwatched --reps 2
    .cache/venv/bin/python bench/vs_livekit_ingress.py --plot docs/vs_livekit_ingress.png
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livekit import api, rtc
from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInput,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)

from bench.procfs import cpu_seconds, process_tree, pss_mb, rss_mb
from bench.sides import KEY, REPO, SECRET, Peers, go_available

HIGH, MEDIUM, LOW = (
    rtc.VideoQuality.VIDEO_QUALITY_HIGH,
    rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    rtc.VideoQuality.VIDEO_QUALITY_LOW,
)
REAL_TIME_FPS = 29.0  # of 30: a viewer below this lost or waited for frames


@dataclass(frozen=True)
class Scenario:
    name: str
    size: str
    preset: int | None  # IngressVideoEncodingPreset, None: the default (720p, 3 layers)
    viewers: tuple[int, ...]  # per session: the quality each viewer asks for
    seconds: float
    sessions: int = 1


SCENARIOS = {
    "720p": Scenario("720p", "1280x720", None, (HIGH, MEDIUM, LOW), 30),
    "1080p": Scenario("1080p", "1920x1080", IngressVideoEncodingPreset.H264_1080P_30FPS_3_LAYERS, (HIGH,), 30),
    "unwatched": Scenario("unwatched", "1280x720", None, (), 60),
    "four": Scenario("four", "1280x720", None, (LOW,), 30, sessions=4),
}


@dataclass
class Run:
    cpu: float = 0.0
    first_frame: float | None = None
    peak_rss: float = 0.0
    peak_pss: float = 0.0
    fps: list[float] = field(default_factory=list)  # per viewer, over the last part of the run
    service_cpu: float = 0.0  # of ``cpu``: the ingress's own process (the rest: its session processes)
    sizes: list[str] = field(default_factory=list)  # per viewer, the frame size it saw most


def clip(size: str, seconds: float) -> Path:
    """The pattern, encoded once (cached in .cache/bench/), long enough for the longest run."""
    path = REPO / ".cache" / "bench" / f"vs-{size}-{int(seconds)}s.flv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
             "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60", "-pix_fmt", "yuv420p",
             "-b:v", "4M" if size == "1920x1080" else "2500k", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)],
            check=True,
        )  # fmt: skip
    return path


def push(source: Path, url: str, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(source), "-t", str(seconds)]
    return subprocess.Popen([*argv, "-c", "copy", "-f", "flv", url], stdout=subprocess.DEVNULL, stderr=log.open("w"))


class Viewer:
    """One LiveKit SDK participant that subscribes to the ingress's video at one quality and times every frame."""

    def __init__(self, ws_url: str, room: str, name: str, quality: int) -> None:
        grants = api.VideoGrants(room_join=True, room=room, can_publish=False)
        self.token = api.AccessToken(KEY, SECRET).with_identity(name).with_grants(grants).to_jwt()
        self.ws_url, self.quality = ws_url, quality
        self.room = rtc.Room()
        self.frames: list[tuple[float, int, int]] = []  # (wall time, width, height)
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.room.on("track_subscribed", self._subscribed)
        await self.room.connect(self.ws_url, self.token)

    def _subscribed(self, track: rtc.Track, publication: rtc.RemoteTrackPublication, _: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            publication.set_video_quality(self.quality)  # type: ignore[arg-type]  # the enum's int value
            self._task = asyncio.ensure_future(self._watch(track))

    async def _watch(self, track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track):
            self.frames.append((time.time(), event.frame.width, event.frame.height))

    def fps_between(self, start: float, end: float) -> float:
        return sum(1 for at, _, _ in self.frames if start <= at < end) / (end - start)

    def usual_size(self, start: float) -> str:
        sizes = [f"{w}x{h}" for at, w, h in self.frames if at >= start]
        return max(set(sizes), key=sizes.count) if sizes else "-"

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.room.disconnect()


async def run_once(peers: Peers, side: str, scenario: Scenario, tag: str) -> Run:
    """One run of ``scenario`` on one side: create the ingresses, connect the viewers, push, measure."""
    source = clip(scenario.size, max(70.0, scenario.seconds + 5))
    urls, viewers = [], []
    async with api.LiveKitAPI(peers.api_url(side), KEY, SECRET) as client:
        for n in range(scenario.sessions):
            room = f"{side}-{scenario.name}-{tag}-{n}"
            preset = scenario.preset
            video = IngressVideoOptions(preset=preset) if preset is not None else None  # type: ignore[arg-type]
            info = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name=room, room_name=room, participant_identity=f"ing-{room}",
                    video=video,
                )
            )  # fmt: skip
            urls.append(f"{info.url}/{info.stream_key}")
            viewers += [Viewer(peers.ws_url, room, f"viewer-{i}", q) for i, q in enumerate(scenario.viewers)]
    for viewer in viewers:
        await viewer.connect()
    await asyncio.sleep(1.0)
    root = peers.root_pid(side)
    at_start = cpu_seconds(process_tree(root))
    before = sum(at_start.values())
    started = time.time()
    encoders = [
        push(source, url, scenario.seconds, peers.work / f"ffmpeg-{side}-{tag}-{n}.log") for n, url in enumerate(urls)
    ]
    run = Run()
    last_cpu = before
    latest: dict[int, float] = {}  # the last CPU seen of every process of the tree (session processes may end)
    while any(encoder.poll() is None for encoder in encoders):
        tree = process_tree(root)
        now_cpu = cpu_seconds(tree)
        latest.update(now_cpu)
        last_cpu = max(last_cpu, sum(now_cpu.values()))
        run.peak_rss = max(run.peak_rss, sum(rss_mb(pid) for pid in tree))
        run.peak_pss = max(run.peak_pss, sum(pss_mb(pid) for pid in tree))
        await asyncio.sleep(0.5)
    ended = time.time()
    run.cpu = max(last_cpu, sum(cpu_seconds(process_tree(root)).values())) - before
    run.service_cpu = cpu_seconds([root]).get(root, latest.get(root, 0.0)) - at_start.get(root, 0.0)
    firsts = [viewer.frames[0][0] - started for viewer in viewers if viewer.frames]
    run.first_frame = min(firsts) if firsts else None
    window = (max(started + 4, ended - 61), ended - 1)  # the last minute, or all of a shorter run past its start
    run.fps = [round(viewer.fps_between(*window), 1) for viewer in viewers]
    run.sizes = [viewer.usual_size(window[0]) for viewer in viewers]
    for viewer in viewers:
        await viewer.close()
    await asyncio.sleep(8)  # both end their sessions (pyingress after its 5 s reconnect grace)
    return run


def ratio(py: float | None, go: float | None) -> float | None:
    return py / go if py is not None and go else None


def med(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def density(peers: Peers, side: str, limit: int) -> tuple[int, list[str]]:
    """The most 720p sessions (a LOW viewer each) that ``side`` holds in real time, trying 1, 2, … ``limit``."""
    held, notes = 0, []
    for count in range(1, limit + 1):
        scenario = Scenario("density", "1280x720", None, (LOW,), 66, sessions=count)
        run = await run_once(peers, side, scenario, f"n{count}")
        notes.append(f"{count} sessions: viewer fps {run.fps}, CPU {run.cpu / scenario.seconds:.2f} cores")
        print(f"  {side} density {count}: fps {run.fps}", flush=True)
        if not run.fps or min(run.fps) < REAL_TIME_FPS:
            break
        held = count
    return held, notes


def plot(results: dict[str, dict[str, list[Run]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot: matplotlib is not installed (.cache/venv/bin/pip install matplotlib); {path} not written")
        return
    names = [name for name in results if results[name].get("go") and results[name].get("py")]
    figure, (cpu_axis, first_axis) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for offset, side, label in ((-width / 2, "go", "livekit/ingress"), (width / 2, "py", "pyingress")):
        cpu = [statistics.median(r.cpu for r in results[n][side]) for n in names]
        first = [med([r.first_frame for r in results[n][side]]) or 0 for n in names]
        cpu_axis.bar([i + offset for i in range(len(names))], cpu, width, label=label)
        first_axis.bar([i + offset for i in range(len(names))], first, width, label=label)
    cpu_axis.set_title("CPU seconds of the process tree per run")
    first_axis.set_title("ffmpeg spawned → first frame at a viewer (s)")
    for axis in (cpu_axis, first_axis):
        axis.set_xticks(range(len(names)), names)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}")


def report(results: dict[str, dict[str, list[Run]]], sides: list[str]) -> None:
    print("\n== per scenario: medians over the repetitions; ratio = pyingress / livekit-ingress, pair by pair ==")
    print(f"{'scenario':10} {'figure':24} {'pyingress':>10} {'livekit-ingress':>16} {'ratio':>7}  pairs")
    for name, by_side in results.items():
        py, go = by_side.get("py", []), by_side.get("go", [])
        figures = (
            ("CPU s", lambda r: r.cpu),
            ("first frame s", lambda r: r.first_frame),
            ("peak RSS MB (sum)", lambda r: r.peak_rss),
            ("peak PSS MB", lambda r: r.peak_pss),
        )
        for label, get in figures:
            pairs = [ratio(get(p), get(g)) for p, g in zip(py, go, strict=False)]
            shown = [round(x, 3) for x in pairs if x is not None]
            print(
                f"{name:10} {label:24} {fmt(med([get(r) for r in py]), 2):>10} "
                f"{fmt(med([get(r) for r in go]), 2):>16} {fmt(med(list(pairs))):>7}  {shown}"
            )
        for side in sides:
            for n, run in enumerate(by_side.get(side, [])):
                print(f"{'':10} {side} rep {n}: viewer fps {run.fps}, sizes {run.sizes}")


async def main_async(options: argparse.Namespace) -> int:
    sides = ["go", "py"] if go_available() and not options.py_only else ["py"]
    if options.py_only:
        print("--py-only: measuring pyingress alone")
    elif "go" not in sides:
        print("livekit/ingress is not here (../shared/tools/livekit-ingress/ingress.gz): measuring pyingress alone")
    chosen = [name for name in options.only.split(",") if name]
    work = Path(tempfile.mkdtemp(prefix="vs-lki-"))  # kept: the logs of both sides and of every ffmpeg
    print(f"logs in {work}", flush=True)
    if True:
        peers = Peers(work, with_go="go" in sides, py_log=options.py_log).start()
        results: dict[str, dict[str, list[Run]]] = {}
        held: dict[str, tuple[int, list[str]]] = {}
        try:
            for name in chosen:
                if name == "density":
                    for side in sides:
                        held[side] = await density(peers, side, options.density_limit)
                    continue
                scenario = SCENARIOS[name]
                for rep in range(options.reps):
                    for side in sides:
                        run = await run_once(peers, side, scenario, f"r{rep}")
                        results.setdefault(name, {}).setdefault(side, []).append(run)
                        print(
                            f"{name} {side} rep {rep}: CPU {run.cpu:.2f} s (service {run.service_cpu:.2f}), "
                            f"first frame {fmt(run.first_frame)} s, "
                            f"RSS {run.peak_rss:.0f} MB, PSS {run.peak_pss:.0f} MB, fps {run.fps}, sizes {run.sizes}",
                            flush=True,
                        )
        finally:
            peers.stop()
    report(results, sides)
    if held:
        print("\n== sessions per machine (720p default preset, one LOW viewer each, real time for 60 s) ==")
        for side, (count, notes) in held.items():
            print(f"{side}: {count} sessions")
            for note in notes:
                print(f"    {note}")
        if "go" in held and held["go"][0]:
            print(f"ratio pyingress / livekit-ingress: {held['py'][0] / held['go'][0]:.2f}")
    if options.plot is not None and results:
        plot(results, options.plot)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="720p,1080p,unwatched,four,density", help="scenarios, comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--density-limit", type=int, default=8)
    parser.add_argument("--plot", type=Path, help="write the PNG here")
    parser.add_argument("--py-only", action="store_true", help="measure pyingress alone")
    parser.add_argument("--py-log", default="warn", help="pyingress's log level (debug: its timeline in the logs)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
