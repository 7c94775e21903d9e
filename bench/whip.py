"""WHIP benchmark: aiortc publishers → `pyingress serve` (pass-through) → livekit-server → room subscribers.

What it measures (one run):

- **answer → first frame**: from the publisher reading pyingress's 201 answer to a room subscriber's first decoded
  video frame, for the first session (goal ≤ 1.0 s);
- **pass-through added latency**, p50/p95/max over every video frame after the first 3 s of every session: from
  the frame's last RTP packet reaching pyingress's receiver (decrypted, in ``WhipReceiver``) to that frame's RTP
  copy handed to the transport towards the room (``RoomPublisher._send`` returned).  Goal: p95 ≤ 10 ms.  Frames
  are matched by their last bytes: pass-through forwards them unchanged;
- **pass-through density**: CPU seconds of the pyingress process per media second, per session, with N sessions
  at once (default 10, each a 1280×720 30 fps H.264 stream at about 2.5 Mb/s plus Opus, each watched by a room
  subscriber so that the SFU keeps every layer flowing); sessions per core = 1 / that.  Goal ≥ 20.

  The viewers' video decoders (libwebrtc threads of the `livekit` SDK in this process, one per viewer: 0.3-0.6 of
  the host's 2 cores for ten 720p streams) run at the lowest priority (nice 19, set per thread): they decode only
  to keep the subscription real, and at normal priority they took the CPU from pyingress just when it had a burst
  to forward, so that its latency tail measured the scheduler.  What pyingress does is the same (every viewer
  subscribes and receives as before; the run prints the keyframe requests pyingress sent its publishers, which a
  starved decoder would raise).  ``--viewers-normal-priority`` leaves them as they were.

- with ``--transcoded``: **transcoded WHIP against RTMP**, one session at a time, same source (the publisher's
  1280×720 H.264 loop; ffmpeg pushes the same file over RTMP with AAC), default preset, one viewer at HIGH: CPU
  seconds per media second of pyingress's whole process tree (its media workers included), and the ratio (goal:
  within 5 %).

How: pyingress runs as its own process (``--child-serve``: `serve` with two timing wrappers added in that process
only; nothing in pyingress/ changes).  Publishers and subscribers run in this process; livekit-server in its own.
The machine is shared (2 cores): publishers, subscribers and the SFU compete with pyingress, so latency figures are
upper bounds of what a dedicated host sees, and CPU is read from pyingress's own /proc entry.

    .cache/venv/bin/python bench/whip.py                 # 10 sessions, 20 s measured
    .cache/venv/bin/python bench/whip.py --smoke         # 2 sessions, 5 s, for CI
    .cache/venv/bin/python bench/whip.py --sessions 5 --seconds 30 --json out.json
    .cache/venv/bin/python bench/whip.py --transcoded          # WHIP vs RTMP, transcoded, 3 pairs of 20 s
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from pyingress.media.latency import percentile
from pyingress.room_server import LocalRoomServer, RoomServerOptions
from tests.harness.ports import free_port, free_udp_port
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher

API_KEY, API_SECRET = "devkey", "secret"
SKIP_SECONDS = 3.0
KEY_BYTES = 24  # a frame is known by its last bytes on both sides of pass-through
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the pyingress process, instrumented ----------------------------------------------------------------------------


def run_child(config_path: str, out_path: str) -> int:
    from pyingress.cli import main as pyingress_main
    from pyingress.ingest.whip import receiver as whip_receiver
    from pyingress.publish import room_publisher

    arrivals: dict[bytes, float] = {}
    samples: list[tuple[float, float, float]] = []  # (send time, RTP in → out ms, RTP in → publisher write ms)

    forward = whip_receiver.WhipReceiver._forward

    def timed_forward(self: Any, stream: Any, timestamp: int, payloads: Any, after_loss: bool, now: float) -> None:
        if stream.plan.kind == "video" and payloads:
            arrivals[payloads[-1][-KEY_BYTES:]] = now
            if len(arrivals) > 10_000:
                arrivals.clear()
        forward(self, stream, timestamp, payloads, after_loss, now)

    written: dict[bytes, float] = {}
    write = room_publisher.RoomPublisher.write

    def timed_write(self: Any, frame: Any) -> None:
        if frame.kind == "video":
            written[frame.data[-KEY_BYTES:]] = time.monotonic()
            if len(written) > 10_000:
                written.clear()
        write(self, frame)

    send = room_publisher.RoomPublisher._send

    async def timed_send(self: Any, join: Any, frame: Any) -> bool:
        sent: bool = await send(self, join, frame)
        transcoded_arrival = getattr(frame, "_bench_arrival", None)
        if sent and frame.kind == "video" and transcoded_arrival is not None:
            now = time.monotonic()
            samples.append((now, (now - transcoded_arrival) * 1000, -1.0))
        elif sent and frame.kind == "video":
            key = frame.data[-KEY_BYTES:]
            arrival, handed = arrivals.pop(key, None), written.pop(key, None)
            if arrival is not None and handed is not None:
                now = time.monotonic()
                samples.append((now, (now - arrival) * 1000, (handed - arrival) * 1000))
        return sent

    from pyingress.media import pipeline as media_pipeline
    from pyingress.publish import pacing

    waits: list[float] = []  # the pacer's delay per video frame, ms
    decide = pacing.FramePacer.decide

    def timed_decide(self: Any, key: Any, *args: Any) -> Any:
        decision = decide(self, key, *args)
        if key != "audio" and decision.action is pacing.Action.SEND:
            waits.append(decision.delay * 1000)
        return decision

    pacing.FramePacer.decide = timed_decide  # type: ignore[method-assign]

    deliver_frame = media_pipeline._QueuedPipeline._deliver_frame

    def timed_deliver_frame(self: Any, frame: Any, arrival_ns: int) -> None:
        # Transcoded: the frame carries the arrival of the packet it was made from (its push into the pipeline).
        object.__setattr__(frame, "_bench_arrival", arrival_ns / 1e9)
        deliver_frame(self, frame, arrival_ns)

    media_pipeline._QueuedPipeline._deliver_frame = timed_deliver_frame  # type: ignore[method-assign]
    import gc

    pauses: list[tuple[int, float]] = []  # (generation, ms) of every collection of the cyclic garbage collector
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000))

    gc.callbacks.append(on_gc)
    keyframe_requests = [0]
    ask_keyframe = whip_receiver.WhipReceiver._ask_keyframe

    def counted_ask_keyframe(self: Any, stream: Any, now: float) -> None:
        before = self.counters.keyframe_requests
        ask_keyframe(self, stream, now)
        keyframe_requests[0] += self.counters.keyframe_requests - before

    whip_receiver.WhipReceiver._ask_keyframe = counted_ask_keyframe  # type: ignore[method-assign]
    whip_receiver.WhipReceiver._forward = timed_forward  # type: ignore[method-assign]
    room_publisher.RoomPublisher._send = timed_send  # type: ignore[method-assign]
    room_publisher.RoomPublisher.write = timed_write  # type: ignore[method-assign]
    try:
        return pyingress_main(["serve", "--config", config_path])
    finally:
        Path(out_path).write_text(json.dumps(samples))
        Path(out_path).with_suffix(".waits.json").write_text(json.dumps(waits[len(waits) // 5 :]))
        Path(out_path).with_suffix(".keyframes.json").write_text(json.dumps(keyframe_requests[0]))
        Path(out_path).with_suffix(".gc.json").write_text(json.dumps(pauses))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and every descendant alive now (media workers are forked from a zygote child)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in family:
                family.add(child)
                frontier.append(child)
    total = 0.0
    for member in family:
        try:
            total += cpu_seconds(member)
        except (OSError, ValueError, IndexError):
            continue
    return total


# -- the run ---------------------------------------------------------------------------------------------------------


class Stack:
    """livekit-server and an instrumented `pyingress serve` (RTMP on too when ``rtmp``)."""

    def __init__(self, work: Path, rtmp: bool = False) -> None:
        self.work = work
        self.room_server = LocalRoomServer(
            RoomServerOptions(
                port=free_port(),
                rtc_tcp_port=free_port(),
                rtc_udp_port=free_udp_port(),
                api_key=API_KEY,
                api_secret=API_SECRET,
                log_path=str(work / "livekit.log"),
                congestion_control=False,
            )
        )
        self.http_port = free_port()
        self.rtmp_port = free_port() if rtmp else -1
        self.out = work / "samples.json"
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self) -> "Stack":
        self.room_server.start(timeout=60)
        config = {
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "ws_url": self.room_server.options.ws_url,
            "bind_address": "127.0.0.1",
            "whip_port": self.http_port,
            "rtmp_port": self.rtmp_port,
            "srt_port": -1,
            "store_path": str(self.work / "pyingress.sqlite3"),
            "rtc_config": {"enable_loopback_candidate": True},
            "logging": {"level": "warn"},
            "cpu_cost": {"whip_bypass_transcoding_cpu_cost": 0.01, "min_idle_ratio": 0.0},
        }
        (self.work / "pyingress.yaml").write_text(yaml.safe_dump(config))
        self._log = (self.work / "pyingress.log").open("w")
        self.child = subprocess.Popen(
            [sys.executable, __file__, "--child-serve", str(self.work / "pyingress.yaml"), "--out", str(self.out)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.http_url}/health", timeout=1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()
            self.child.wait(timeout=30)
            self._log.close()
        self.room_server.stop()


DECODER_THREADS = ("VideoDecoderQue", "IncomingVideoSt")  # libwebrtc's decode and render queues (comm: 15 chars)


def lower_decoder_priority() -> int:
    """nice 19 for this process's video decoder threads (Linux: a thread's niceness is its own); how many."""
    lowered = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() in DECODER_THREADS:
                os.setpriority(os.PRIO_PROCESS, int(task.name), 19)
                lowered += 1
        except OSError:
            continue
    return lowered


def viewer_token(identity: str, room: str) -> str:
    token = api.AccessToken(API_KEY, API_SECRET).with_identity(identity)
    return token.with_grants(api.VideoGrants(room_join=True, room=room, can_publish=False)).to_jwt()


async def run(sessions: int, seconds: float, work: Path, nice_viewers: bool = True) -> dict[str, Any]:
    stack = await Stack(work).start()
    assert stack.child is not None
    child, room_server, out = stack.child, stack.room_server, stack.out
    http_url = stack.http_url
    publishers: list[WhipPublisher] = []
    viewers: list[RoomSubscriber] = []
    result: dict[str, Any] = {"sessions": sessions, "seconds": seconds}
    try:
        async with api.LiveKitAPI(http_url, API_KEY, API_SECRET) as client:
            for index in range(sessions):
                info = await client.ingress.create_ingress(
                    CreateIngressRequest(
                        input_type=IngressInput.WHIP_INPUT,
                        name=f"bench-{index}",
                        room_name=f"bench-{index}",
                        participant_identity=f"whip-{index}",
                    )
                )
                token = viewer_token(f"viewer-{index}", f"bench-{index}")
                viewer = await RoomSubscriber(room_server.options.ws_url, token).__aenter__()
                viewers.append(viewer)
                publisher = WhipPublisher(f"{info.url}/{info.stream_key}", work, video="h264", bitrate="2500k")
                publishers.append(publisher)
                response = await publisher.start()
                assert response.status == 201, response
                if index == 0:
                    frame_at, _ = await viewer.first_video_frame("whip-0", timeout=30)
                    result["answer_to_first_frame_s"] = frame_at - publisher.answer_received_at
                else:
                    await viewer.first_video_frame(f"whip-{index}", timeout=30)
        if nice_viewers:
            result["decoder_threads_niced"] = lower_decoder_priority()
        await asyncio.sleep(SKIP_SECONDS)
        cpu_before, wall_before = cpu_seconds(child.pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu = cpu_seconds(child.pid) - cpu_before
        wall = time.monotonic() - wall_before
        result["cpu_per_session"] = cpu / wall / sessions
        result["sessions_per_core"] = 1 / result["cpu_per_session"] if cpu else float("inf")
    finally:
        for publisher in publishers:
            await publisher.stop()
        for viewer in viewers:
            await viewer.__aexit__(None, None, None)
        stack.stop()
    samples = json.loads(out.read_text()) if out.exists() else []
    started = min((sample[0] for sample in samples), default=0.0)
    kept = [sample for sample in samples if sample[0] - started >= SKIP_SECONDS]
    latencies = sorted(sample[1] for sample in kept)
    to_write = sorted(sample[2] for sample in kept)
    gc_path = out.with_suffix(".gc.json")
    if gc_path.exists():
        pauses = json.loads(gc_path.read_text())
        result["gc"] = {
            f"gen{generation}": {
                "count": len(ms := [pause for gen, pause in pauses if gen == generation]),
                "max_ms": max(ms, default=0.0),
                "total_ms": sum(ms),
            }
            for generation in (0, 1, 2)
        }
    keyframes_path = out.with_suffix(".keyframes.json")
    if keyframes_path.exists():
        result["keyframe_requests"] = json.loads(keyframes_path.read_text())
    waits_path = out.with_suffix(".waits.json")
    waits = sorted(json.loads(waits_path.read_text())) if waits_path.exists() else []
    if waits:
        result["pacer_wait_ms"] = {"p50": statistics.median(waits), "p95": percentile(waits, 0.95)}
    if latencies:
        result["latency_ms"] = {
            "frames": len(latencies),
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "to_write_p50": statistics.median(to_write),
            "to_write_p95": percentile(to_write, 0.95),
        }
    return result


async def _cpu_while(stack: Stack, viewer: RoomSubscriber, identity: str, seconds: float) -> tuple[float, float]:
    """CPU-s per media second of pyingress's process tree, and of its own process alone (the rest: its media
    workers and zygote), while one session plays to ``viewer``."""
    assert stack.child is not None
    pid = stack.child.pid
    await viewer.first_video_frame(identity, timeout=40)
    await asyncio.sleep(SKIP_SECONDS)
    tree_before, own_before, wall_before = tree_cpu_seconds(pid), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall_before
    return (tree_cpu_seconds(pid) - tree_before) / wall, (cpu_seconds(pid) - own_before) / wall


async def run_transcoded(seconds: float, work: Path, reps: int = 1) -> dict[str, Any]:
    """A transcoded WHIP session, then an RTMP session of the same file, each alone, default preset; ``reps`` times,
    alternating, so that a drift of the host's speed falls on both sides (one pair moved 1.06 → 1.19 between two
    runs of the same code an hour apart)."""
    from tests.harness.publishers import ffmpeg_binary
    from tests.harness.whip_publisher import encode_audio, encode_video

    stack = await Stack(work, rtmp=True).start()
    result: dict[str, Any] = {"seconds": seconds, "pairs": []}
    encode_video(work, "h264", 1280, 720, bitrate="2500k")
    encode_audio(work, 2)
    # The publisher's very loop, in MP4 so that ffmpeg can loop it (a raw .h264 file cannot be rewound).
    loop = work / "pattern.mp4"
    remux = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-framerate", "30"]
    subprocess.run([*remux, "-i", str(work / "pattern-h264-1280x720-2500k.h264"), "-c", "copy", str(loop)], check=True)
    try:
        async with api.LiveKitAPI(stack.http_url, API_KEY, API_SECRET) as client:
            whip = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.WHIP_INPUT,
                    name="whip-t",
                    room_name="whip-t",
                    participant_identity="whip-t",
                    enable_transcoding=True,
                )
            )
            rtmp = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name="rtmp-t", room_name="rtmp-t", participant_identity="rtmp-t"
                )
            )
            for rep in range(reps):
                async with RoomSubscriber(
                    stack.room_server.options.ws_url, viewer_token(f"v{rep}", "whip-t")
                ) as viewer:
                    publisher = WhipPublisher(f"{whip.url}/{whip.stream_key}", work, video="h264", bitrate="2500k")
                    try:
                        assert (await publisher.start()).status == 201
                        whip_cpu = await _cpu_while(stack, viewer, "whip-t", seconds)
                    finally:
                        await publisher.stop()
                await asyncio.sleep(7)  # the session ends (grace), its worker exits
                command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1"]
                command += ["-i", str(loop)]
                command += ["-stream_loop", "-1", "-i", str(work / "tone-2.ogg"), "-c:v", "copy", "-c:a", "aac"]
                command += ["-f", "flv", f"rtmp://127.0.0.1:{stack.rtmp_port}/live/{rtmp.stream_key}"]
                encoder = subprocess.Popen(command, stdin=subprocess.DEVNULL)
                try:
                    async with RoomSubscriber(
                        stack.room_server.options.ws_url, viewer_token(f"r{rep}", "rtmp-t")
                    ) as viewer:
                        rtmp_cpu = await _cpu_while(stack, viewer, "rtmp-t", seconds)
                finally:
                    encoder.terminate()
                    encoder.wait(timeout=10)
                await asyncio.sleep(7)
                result["pairs"].append({"whip": whip_cpu, "rtmp": rtmp_cpu})
    finally:
        stack.stop()
    pairs = result["pairs"]
    result["whip_cpu"] = statistics.median(pair["whip"][0] for pair in pairs)
    result["rtmp_cpu"] = statistics.median(pair["rtmp"][0] for pair in pairs)
    result["whip_over_rtmp"] = statistics.median(pair["whip"][0] / pair["rtmp"][0] for pair in pairs)
    samples = json.loads(stack.out.read_text()) if stack.out.exists() else []
    # Each WHIP session's samples are the run of them before a gap of more than 5 s (its RTMP session's turn).
    latencies: list[float] = []
    start, previous, is_whip = None, None, True
    for at, latency, *_ in samples:
        if previous is not None and at - previous > 5:
            is_whip, start = not is_whip, None
        start = at if start is None else start
        if is_whip and at - start >= SKIP_SECONDS:
            latencies.append(latency)
        previous = at
    latencies.sort()
    if latencies:
        result["whip_latency_ms"] = {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": latencies[-1],
        }
    return result


def report_transcoded(result: dict[str, Any]) -> str:
    pairs = result["pairs"]
    lines = [
        "WHIP transcoded vs RTMP, same 1280x720 H.264 file, default preset, one viewer each, alone in turn",
        *(
            f"  pair {n}: CPU-s per media second, tree (pyingress process alone): "
            f"WHIP {pair['whip'][0]:.3f} ({pair['whip'][1]:.3f}), RTMP {pair['rtmp'][0]:.3f} ({pair['rtmp'][1]:.3f})"
            f" => {pair['whip'][0] / pair['rtmp'][0]:.3f}"
            for n, pair in enumerate(pairs)
        ),
        f"  medians: WHIP {result['whip_cpu']:.3f}, RTMP {result['rtmp_cpu']:.3f}; "
        f"WHIP/RTMP pair by pair {result['whip_over_rtmp']:.3f}",
    ]
    if lat := result.get("whip_latency_ms"):
        lines.append(
            f"  WHIP transcoded, pipeline hand-over -> RTP out (video): p50 {lat['p50']:.1f} ms, "
            f"p95 {lat['p95']:.1f} ms, max {lat['max']:.1f} ms"
        )
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    lines = [f"WHIP pass-through, {result['sessions']} sessions (1280x720 H.264 ~2.5 Mb/s + Opus), each watched"]
    if "answer_to_first_frame_s" in result:
        lines.append(f"  answer -> first decoded frame at a subscriber: {result['answer_to_first_frame_s']:.3f} s")
    if "latency_ms" in result:
        lat = result["latency_ms"]
        lines.append(
            f"  RTP in -> RTP out (video): p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, "
            f"max {lat['max']:.1f} ms over {lat['frames']} frames"
        )
        lines.append(
            f"    of which RTP in -> the room publisher's write: p50 {lat['to_write_p50']:.2f} ms, "
            f"p95 {lat['to_write_p95']:.2f} ms (the rest: packetising, SRTP, sending)"
        )
    if "pacer_wait_ms" in result:
        wait = result["pacer_wait_ms"]
        lines.append(
            f"    the pacer's hold for video frames (applied only when pacing is on): p50 {wait['p50']:.2f} ms, "
            f"p95 {wait['p95']:.2f} ms"
        )
    if "decoder_threads_niced" in result:
        lines.append(f"  viewers' decoder threads at nice 19: {result['decoder_threads_niced']}")
    if "gc" in result:
        collections = ", ".join(
            f"{gen} x{v['count']} (max {v['max_ms']:.1f} ms, total {v['total_ms']:.0f} ms)"
            for gen, v in result["gc"].items()
        )
        lines.append(f"  pyingress's garbage collections over the whole run: {collections}")
    if "keyframe_requests" in result:
        lines.append(f"  keyframe requests (PLI/FIR) pyingress sent its publishers: {result['keyframe_requests']}")
    if "cpu_per_session" in result:
        lines.append(
            f"  pyingress CPU per session: {result['cpu_per_session']:.4f} CPU-s/s "
            f"=> {result['sessions_per_core']:.1f} sessions per core"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="2 sessions, 5 s: does it work (CI)")
    parser.add_argument("--transcoded", action="store_true", help="transcoded WHIP against RTMP, CPU")
    parser.add_argument(
        "--viewers-normal-priority", action="store_true", help="leave the viewers' decoders at normal priority"
    )
    parser.add_argument("--reps", type=int, default=3, help="with --transcoded: WHIP/RTMP pairs, alternating")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--child-serve", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_serve:
        return run_child(args.child_serve, args.out)
    sessions, seconds = (2, 5.0) if args.smoke else (args.sessions, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-whip-") as tmp:
        if args.transcoded:
            result = asyncio.run(
                run_transcoded(5.0 if args.smoke else args.seconds, Path(tmp), 1 if args.smoke else args.reps)
            )
            print(report_transcoded(result))
        else:
            result = asyncio.run(run(sessions, seconds, Path(tmp), not args.viewers_normal_priority))
            print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
