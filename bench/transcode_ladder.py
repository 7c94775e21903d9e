"""Transcoding ladder benchmark: pyingress's media pipeline against the ffmpeg CLI (and GStreamer), same run.

What it measures, per scenario (docs/performance.md has the latest figures and the exact command):

- CPU seconds per media second, offline (every frame encoded, as fast as possible), for
  pyingress (worker process, the production shape; and in-process threads), the ffmpeg CLI with *identical*
  encoder settings (built from the same option dictionaries the pipeline uses, all single-threaded like ours),
  the ffmpeg CLI with its default threads, and a GStreamer pipeline shaped like livekit/ingress's
  (``../shared/tools/baseline-ladder`` beside the checkout, skipped when absent); the ratios pyingress / baseline;
- live (packets pushed at the media rate, the default 0.5 s time bound): added latency packet in → encoded frame
  out, p50/p95 per layer after the first 90 frames; time from the first keyframe to the first encoded frame;
  the worker's RSS (peak, and first/last sample to show it is flat); frames dropped to stay in real time;
- two 720p sessions at once in real time on this machine: drops and latency of each.

    .cache/venv/bin/python bench/transcode_ladder.py            # full: 1080p and 720p H.264, 1080p VP8, live
    .cache/venv/bin/python bench/transcode_ladder.py --smoke    # seconds, for CI: 1080p H.264 offline + live
    .cache/venv/bin/python bench/transcode_ladder.py --soak 600 # RSS of one live 1080p session over 10 minutes

The machine is shared and a VM: wall times vary by ±30 %, CPU seconds by ~±5 % (feasibility.md §0); read ratios
from one run, compare runs with care.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.protocol.ingress import IngressVideoEncodingPreset as Preset
from livekit.protocol.models import VideoCodec, VideoQuality

from bench.procfs import kb_field
from pyingress.media.audio_encode import opus_options
from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEvent, StatsUpdated
from pyingress.media.launcher import WorkerLauncher
from pyingress.media.layer_plan import plan_layers
from pyingress.media.packets import EncodedPacket, MediaKind, OutputFrame, StreamDescription
from pyingress.media.pipeline import open_pipeline
from pyingress.media.presets import VideoEncoding, audio_preset, video_preset
from pyingress.media.video_encode import encoder_name, encoder_options

REPO = Path(__file__).resolve().parents[1]
FFMPEG = "/usr/bin/ffmpeg"
# The shared baseline tool lives beside the checkout (../shared/tools/), not inside it.
BASELINE = REPO / ".." / "shared" / "tools" / "baseline-ladder"
CACHE = REPO / ".cache" / "bench"
QUALITY_NAMES: dict[int, str] = {VideoQuality.LOW: "LOW", VideoQuality.MEDIUM: "MEDIUM", VideoQuality.HIGH: "HIGH"}


# -- inputs -------------------------------------------------------------------------------------------------------


def make_clip(height: int, seconds: float) -> Path:
    """testsrc2 + sine, H.264 High without B-frames (the latency goal's source) + AAC, in FLV like RTMP."""
    width = height * 16 // 9
    path = CACHE / f"clip{height}_{seconds:g}s.flv"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
                *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}"),
                *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
                *("-c:v", "libx264", "-preset", "veryfast", "-b:v", "5M", "-maxrate", "5M", "-bufsize", "10M"),
                *("-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest", str(path)),
            ],
            check=True,
        )
    return path


def demux(path: Path) -> tuple[list[StreamDescription], list[EncodedPacket]]:
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        streams = [
            StreamDescription(
                "video",
                "h264",
                video.codec_context.extradata,
                video.width,
                video.height,
                float(video.average_rate or 0),
            ),
            StreamDescription(
                "audio",
                "aac",
                audio.codec_context.extradata,
                sample_rate=audio.sample_rate,
                channels=audio.codec_context.layout.nb_channels,
            ),
        ]
        packets = []
        for packet in container.demux(video, audio):
            if packet.size == 0 or packet.pts is None:
                continue
            kind: MediaKind = "video" if packet.stream.index == video.index else "audio"
            dts = packet.dts if packet.dts is not None else packet.pts
            codec = "h264" if kind == "video" else "aac"
            packets.append(
                EncodedPacket(kind, codec, bytes(packet), packet.pts, dts, packet.time_base, packet.is_keyframe)
            )
    return streams, packets


def encoding_for(codec: str, height: int) -> VideoEncoding:
    preset = video_preset(Preset.H264_1080P_30FPS_3_LAYERS if height == 1080 else Preset.H264_720P_30FPS_3_LAYERS)
    if codec == "vp8":
        return replace(preset, codec=VideoCodec.VP8)
    return preset


# -- the pyingress side (runs in a child process so that its CPU and RSS are its own) -----------------------------


class _Sink:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        self.lock = threading.Lock()

    def on_frame(self, frame: OutputFrame) -> None:
        key = "audio" if frame.quality is None else QUALITY_NAMES[frame.quality]
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def on_event(self, event: PipelineEvent) -> None:
        if isinstance(event, StatsUpdated):
            self.stats = event.stats.counters


def _rss_mb(pid: int) -> float:
    return kb_field(f"/proc/{pid}/status", "VmRSS") / 1024


def run_child(args: argparse.Namespace) -> None:
    streams, packets = demux(Path(args.clip))
    height = next(s.height for s in streams if s.kind == "video")
    live = args.mode == "live"
    config = PipelineConfig(
        encoding_for(args.codec, height),
        audio_preset(0),
        max_queue_delay=0.5 if live else None,
        parallel_layers={"1": True, "0": False}.get(args.parallel_layers),  # "auto": the pipeline decides
        session_id=f"bench-{args.mode}",
    )
    loops = max(1, round(args.media_seconds / (packets[-1].dts * packets[-1].time_base))) if args.media_seconds else 1
    sink = _Sink()
    launcher = WorkerLauncher(fork=args.launch == "fork")
    if launcher.start():  # a running service has its zygote warm before the first session
        warm_up = launcher.launch()
        assert warm_up.stdin is not None
        warm_up.stdin.close()
        warm_up.wait(30)
    # What the running service would not pay per session: this interpreter's start, its imports, reading the clip.
    setup = resource.getrusage(resource.RUSAGE_SELF)
    setup_cpu = setup.ru_utime + setup.ru_stime
    started = time.monotonic()
    pipeline = open_pipeline(config, sink, isolation=args.isolation, launcher=launcher)
    worker_pid = getattr(pipeline, "pid", os.getpid())
    rss: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            mb = _rss_mb(worker_pid)
            if mb:  # 0: the worker has already exited
                rss.append(mb)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for desc in streams:
        pipeline.add_stream(desc)
    clip_seconds = float(packets[-1].dts * packets[-1].time_base) + 1 / 30
    begin = time.monotonic()
    for loop in range(loops):
        offset = loop * clip_seconds
        for packet in packets:
            at = float(packet.dts * packet.time_base) + offset
            if live:
                delay = begin + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if loop:
                ticks = round(offset / packet.time_base)
                packet = replace(packet, pts=packet.pts + ticks, dts=packet.dts + ticks)
            pipeline.push(packet)
    pipeline.end()
    pipeline.wait(600)
    wall = time.monotonic() - started
    stop.set()
    stats = dict(pipeline.stats.counters)
    pipeline.close()
    latency = {}
    for track in pipeline.latency.tracks():
        # steady state: leave out the first 90 frames (3 s; a third of a short smoke run) like feasibility.md §6
        skip = min(90, len(pipeline.latency.samples(track)) // 3)
        summary = pipeline.latency.summary(track, skip=skip)
        latency[track] = {"p50": round(summary.p50_ms, 1), "p95": round(summary.p95_ms, 1), "n": summary.count}
    dropped = stats.get("packets_dropped_behind", 0) + sum(
        value for key, value in stats.items() if key.startswith("late_frames_dropped")
    )
    own = resource.getrusage(resource.RUSAGE_SELF)
    launcher.close()
    print(
        json.dumps(
            {
                "wall": wall,
                "setup_cpu": setup_cpu,
                "session_cpu": own.ru_utime + own.ru_stime - setup_cpu,  # queue, pipe, events: the session's side
                # As the worker measured itself: a forked worker is the zygote's child, not ours. A spawned one
                # includes its interpreter start and imports (paid per session in that mode).
                "worker_cpu": stats.get("worker_cpu_ms", 0) / 1000,
                "media_seconds": clip_seconds * loops,
                "frames": sink.counts,
                "latency": latency,
                "first_frame": pipeline.latency.first_frame_delay,
                "worker_rss_peak": max(rss, default=0.0),
                "worker_rss_first": rss[2] if len(rss) > 2 else 0.0,
                "worker_rss_last": rss[-1] if rss else 0.0,
                "worker_rss_per_minute": [round(max(rss[i : i + 120]), 1) for i in range(0, len(rss), 120)],
                "dropped": dropped,
                "drops": {k: v for k, v in stats.items() if ("dropped" in k or "skips" in k) and v},
                "keyframe_skips": stats.get("keyframe_skips", 0),
            }
        )
    )


# -- measuring commands --------------------------------------------------------------------------------------------


def measure(command: list[str]) -> tuple[float, float, str]:
    """(CPU seconds of the command and every descendant it waited for, wall seconds, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, result.stdout


def pyingress(
    clip: Path,
    codec: str,
    mode: str,
    isolation: str = "process",
    media_seconds: float = 0,
    parallel_layers: bool | None = None,
    launch: str = "fork",
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--clip", str(clip), "--codec", codec]
    command += ["--isolation", isolation, "--media-seconds", str(media_seconds), "--launch", launch]
    command += ["--parallel-layers", {True: "1", False: "0", None: "auto"}[parallel_layers]]
    cpu, _, out = measure(command)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["cpu_total"] = cpu  # wrong for concurrent sessions (their rusage windows overlap); kept for reference
    result["cpu"] = result["worker_cpu"] + result["session_cpu"]  # the pipeline's own, as the child measured it
    result["cpu_per_media_s"] = result["cpu"] / result["media_seconds"]
    return result


def ffmpeg_same_settings(clip: Path, codec: str, seconds: float, threads: str) -> dict[str, Any]:
    """The ladder with exactly the pipeline's encoder options; ``threads='1'`` everywhere like the pipeline."""
    streams, _ = demux(clip)
    video = next(s for s in streams if s.kind == "video")
    encoding = encoding_for(codec, video.height)
    plan = plan_layers(encoding.layers, video.width, video.height)
    gop = round(2.0 * encoding.frame_rate)
    single = threads == "1"
    command = [FFMPEG, "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    if single:
        command += ["-threads", "1", "-filter_threads", "1", "-filter_complex_threads", "1"]
    command += ["-i", str(clip)]
    splits = "".join(f"[v{i}]" for i in range(len(plan.layers)))
    graph = [f"[0:v]split={len(plan.layers)}{splits}"]  # the source is at the cap: no fps filter needed
    for index, layer in enumerate(plan.layers):
        graph.append(f"[v{index}]scale={layer.width}:{layer.height}:flags=bilinear[o{index}]")
    command += ["-filter_complex", ";".join(graph)]
    for index, layer in enumerate(plan.layers):
        command += ["-map", f"[o{index}]", "-c:v", encoder_name("h264" if codec == "h264" else "vp8")]
        for key, value in encoder_options(codec, layer.bitrate, gop).items():
            command += [f"-{key}", value]
        if single:
            command += ["-threads", "1"]
        command += ["-pix_fmt", "yuv420p", "-f", "null", "-"]
    audio = audio_preset(0)
    command += ["-map", "0:a", "-c:a", "libopus", "-b:a", str(audio.bitrate), "-ar", "48000", "-ac", "2"]
    for key, value in opus_options(audio).items():
        command += [f"-{key}", value]
    command += ["-f", "null", "-"]
    cpu, wall, _ = measure(command)
    return {"cpu": cpu, "wall": wall, "cpu_per_media_s": cpu / seconds}


def shared_baseline(tool: str, clip: Path, height: int, seconds: float) -> dict[str, Any] | None:
    if not BASELINE.exists() or (tool == "gstreamer" and not shutil.which("gst-launch-1.0")):
        return None
    try:
        _, wall, out = measure([str(BASELINE), tool, str(clip), str(height)])
    except subprocess.CalledProcessError:
        return None
    fields = dict(item.split("=") for item in out.split())
    cpu = float(fields["cpu_s"])
    return {"cpu": cpu, "wall": wall, "cpu_per_media_s": cpu / seconds, "rss": float(fields["max_rss_mb"])}


# -- report ----------------------------------------------------------------------------------------------------


def _paired_ratio(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    """Median over repetitions of pyingress CPU ÷ this variant's CPU *in the same repetition*.

    Variants of one repetition run back to back, so a neighbour's load or the VM's drift hits both sides of each
    ratio alike; a ratio of medians would pair runs minutes apart (ffmpeg alone varied by 10 % between runs).
    """
    if len(ours) != len(theirs):
        return "n/a"
    ratios = sorted(mine["cpu"] / other["cpu"] for mine, other in zip(ours, theirs, strict=True))
    return f"{ratios[len(ratios) // 2]:.3f}"


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median CPU (its other figures come with it)."""
    return sorted(runs, key=lambda run: run["cpu"])[len(runs) // 2]


def offline(
    clip: Path, codec: str, height: int, seconds: float, with_shared: bool, with_threads: bool, repeat: int = 1
) -> None:
    print(f"\n== offline {codec} {height}p ladder + Opus, {seconds:g} s of media, median of {repeat} (CPU-s) ==")
    variants: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, result: dict[str, Any] | None) -> None:
        if result is not None:
            variants.setdefault(name, []).append(result)

    for _ in range(repeat):  # interleaved, so that a noisy neighbour hits every variant alike
        add("ffmpeg CLI, same settings, 1 thread", ffmpeg_same_settings(clip, codec, seconds, "1"))
        add("pyingress (worker process)", pyingress(clip, codec, "offline"))
        add("ffmpeg CLI, same settings, default threads", ffmpeg_same_settings(clip, codec, seconds, "auto"))
        if with_threads:
            add("pyingress (threads in-process)", pyingress(clip, codec, "offline", isolation="thread"))
            add("pyingress (process, thread per layer)", pyingress(clip, codec, "offline", parallel_layers=True))
            add("pyingress (worker spawned, no zygote)", pyingress(clip, codec, "offline", launch="spawn"))
        if with_shared and codec == "h264":
            add("baseline-ladder ffmpeg (default threads)", shared_baseline("ffmpeg", clip, height, seconds))
            add("baseline-ladder gstreamer (livekit-style)", shared_baseline("gstreamer", clip, height, seconds))
    process = _median_run(variants["pyingress (worker process)"])
    order = [
        "pyingress (worker process)",
        "pyingress (threads in-process)",
        "pyingress (process, thread per layer)",
        "pyingress (worker spawned, no zygote)",
        "ffmpeg CLI, same settings, 1 thread",
        "ffmpeg CLI, same settings, default threads",
        "baseline-ladder ffmpeg (default threads)",
        "baseline-ladder gstreamer (livekit-style)",
    ]
    print(f"{'variant':46} {'CPU s':>7} {'CPU/media-s':>12} {'wall s':>7}  pyingress/this  (all CPU s)")
    print("(CPU s, wall s: the median run; pyingress/this: the median of the per-repetition ratios)")
    for name in order:
        if name not in variants:
            continue
        row = _median_run(variants[name])
        spread = " ".join(f"{run['cpu']:.2f}" for run in variants[name])
        print(
            f"{name:46} {row['cpu']:7.2f} {row['cpu_per_media_s']:12.3f} {row['wall']:7.2f}  "
            f"{_paired_ratio(variants['pyingress (worker process)'], variants[name]):>14}  ({spread})"
        )
    print(
        f"pyingress CPU = worker {process['worker_cpu']:.2f} s + session side (queue, pipe, events)"
        f" {process['session_cpu']:.2f} s; not counted: bench process start, imports, clip demux, zygote start"
        f" {process['setup_cpu']:.2f} s; worker RSS peak {process['worker_rss_peak']:.0f} MB"
    )


def live(
    clip: Path,
    codec: str,
    seconds: float,
    sessions: int = 1,
    media_seconds: float = 0,
    parallel_layers: bool | None = None,
) -> None:
    label = f"{sessions} sessions" if sessions > 1 else "1 session"
    label += "" if parallel_layers is None else (", thread per layer" if parallel_layers else ", layers sequential")
    span = media_seconds or seconds
    print(f"\n== live {codec} {clip.stem}, {label}, paced at 1x for {span:g} s (latency after the start-up frames) ==")
    results: list[dict[str, Any]] = []

    def one() -> None:
        results.append(pyingress(clip, codec, "live", media_seconds=media_seconds, parallel_layers=parallel_layers))

    runners = [threading.Thread(target=one) for _ in range(sessions)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    for index, result in enumerate(results):
        layers = "  ".join(
            f"{track} p50 {values['p50']:.0f} / p95 {values['p95']:.0f} ms"
            for track, values in result["latency"].items()
        )
        print(f"session {index + 1}: {layers}")
        print(
            f"  first frame {result['first_frame']:.3f} s after the first keyframe; "
            f"dropped {result['dropped']} {result['drops']}; "
            f"frames {result['frames']}; CPU {result['cpu_per_media_s']:.3f} s per media-s; "
            f"worker RSS {result['worker_rss_first']:.0f} → {result['worker_rss_last']:.0f} MB "
            f"(peak {result['worker_rss_peak']:.0f})"
        )
        if len(result["worker_rss_per_minute"]) > 1:
            print(f"  worker RSS, peak of each minute (MB): {result['worker_rss_per_minute']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length for the full run")
    parser.add_argument("--repeat", type=int, default=1, help="offline runs per variant; medians are printed")
    parser.add_argument("--only", default="1080p,720p,vp8,live", help="scenarios of the full run, comma-separated")
    parser.add_argument("--soak", type=float, default=0.0, help="only: one live 1080p session for this many seconds")
    parser.add_argument("--child", choices=["offline", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--codec", default="h264", help=argparse.SUPPRESS)
    parser.add_argument("--isolation", default="process", help=argparse.SUPPRESS)
    parser.add_argument("--media-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--parallel-layers", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--launch", choices=["fork", "spawn"], default="fork", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        run_child(args)
        return
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    if args.soak:
        live(make_clip(1080, 20.0), "h264", 20.0, media_seconds=args.soak)
        return
    if args.smoke:
        clip = make_clip(1080, 3.0)
        offline(clip, "h264", 1080, 3.0, with_shared=False, with_threads=False)
        live(clip, "h264", 3.0)
        return
    seconds = args.seconds
    clip1080, clip720 = make_clip(1080, seconds), make_clip(720, seconds)
    wanted = set(args.only.split(","))
    with tempfile.TemporaryDirectory():
        if "1080p" in wanted:
            offline(clip1080, "h264", 1080, seconds, with_shared=True, with_threads=True, repeat=args.repeat)
        if "720p" in wanted:
            offline(clip720, "h264", 720, seconds, with_shared=True, with_threads=False, repeat=args.repeat)
        if "vp8" in wanted:
            offline(clip1080, "vp8", 1080, seconds, with_shared=False, with_threads=False, repeat=args.repeat)
        if "live" in wanted:
            live(clip1080, "h264", seconds)
            live(clip1080, "h264", seconds, parallel_layers=True)
            live(clip720, "h264", seconds, sessions=2)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
