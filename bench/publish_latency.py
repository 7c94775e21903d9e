"""Publish latency benchmark: ffmpeg RTMP → `pyingress serve` → livekit-server → a room subscriber, timed.

What it measures, per run (a fresh RTMP ingress, default preset: 720p30 3 layers + Opus stereo; the source is a
1280×720 30 fps test pattern, x264 veryfast/zerolatency **without B-frames**, + AAC, paced with ``-re``):

- **time to first frame**: from ffmpeg's first video keyframe reaching the RTMP door to the subscriber's first
  decoded video frame (goal ≤ 1.0 s, issue 6).  The keyframe is seen by a TCP relay in front of pyingress's RTMP
  port that reads the publisher's chunk stream with our own sans-IO parser, so the figure starts when the
  keyframe leaves the encoder's socket, not when ffmpeg was spawned; the encoder's own start-up (spawn → first
  keyframe at the door: process start, x264 init, RTMP handshake/connect/publish) is printed beside it.  The
  steps in between come from pyingress itself: first keyframe into the media pipeline, first encoded frame out,
  tracks published in the room, first video RTP handed to the transport;
- **ingest → RTP-out latency** per output track (HIGH/MEDIUM/LOW video, audio), p50/p95/max over every frame
  after the first 3 s of each run: from the packet's hand-over to the media pipeline (after RTMP parsing) to the
  frame's last RTP packet handed to the transport (pacing wait included).  Goal: p95 ≤ 80 ms for video.

How: pyingress runs as its own process (``--child-serve``: the ``serve`` command with four timing wrappers added
in that process only — the pipeline's frame hand-over stamps each frame with its packet's arrival, the room
publisher's send reads it back, and its start and keyframe requests are stamped; nothing in pyingress/ changes).
Clocks: CLOCK_MONOTONIC in every process.

    .cache/venv/bin/python bench/publish_latency.py            # 3 runs × 30 s of media
    .cache/venv/bin/python bench/publish_latency.py --smoke    # 1 run × 8 s, for CI
    .cache/venv/bin/python bench/publish_latency.py --runs 5 --seconds 20 --json out.json

The machine is shared (2 cores): the subscriber decodes 720p and livekit-server forwards in the same box;
latency figures under load are upper bounds of what a dedicated host sees.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInput, ListIngressRequest

from pyingress.ingest.rtmp.chunk import ChunkStream
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.messages import MessageType
from pyingress.media.latency import percentile
from pyingress.room_server import LocalRoomServer, RoomServerOptions

FFMPEG = "/usr/bin/ffmpeg"
API_KEY, API_SECRET = "devkey", "secret"
HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0 + C1 + C2: the client's side of the plain and the digest handshake
SKIP_SECONDS = 3.0  # start-up backlog left out of the latency percentiles
QUALITY_NAMES = ("LOW", "MEDIUM", "HIGH")


def free_port(kind: int = 1) -> int:
    import socket

    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the pyingress process, instrumented ----------------------------------------------------------------------------


def run_child(config_path: str, out_path: str) -> int:
    """`pyingress serve` with timing wrappers; on exit, per session timings and samples go to ``out_path``."""
    from pyingress.cli import main as pyingress_main
    from pyingress.media import pipeline as media_pipeline
    from pyingress.publish import room_publisher

    sessions: dict[str, dict[str, Any]] = {}
    publishers: dict[str, Any] = {}

    def session(resource_id: str) -> dict[str, Any]:
        return sessions.setdefault(resource_id, {"samples": {}})

    deliver_frame = media_pipeline._QueuedPipeline._deliver_frame

    def timed_deliver_frame(self: Any, frame: Any, arrival_ns: int) -> None:
        object.__setattr__(frame, "_bench_arrival_ns", arrival_ns)  # rides along to the publisher's send
        now = time.monotonic_ns()
        record = session(self.config.session_id)
        track = "audio" if frame.kind == "audio" else QUALITY_NAMES[frame.quality]
        record.setdefault("pipeline", {}).setdefault(track, []).append((now, (now - arrival_ns) / 1e6))
        if frame.kind == "video" and "first_video_out_ns" not in record:
            record["first_keyframe_in_ns"] = self.latency.first_keyframe_in_ns
            record["first_video_out_ns"] = now
        deliver_frame(self, frame, arrival_ns)

    send = room_publisher.RoomPublisher._send

    async def timed_send(self: Any, join: Any, frame: Any) -> bool:
        sent: bool = await send(self, join, frame)
        arrival = getattr(frame, "_bench_arrival_ns", None)
        if sent and arrival is not None:
            now = time.monotonic_ns()
            record = session(self.resource_id)
            track = "audio" if frame.kind == "audio" else QUALITY_NAMES[frame.quality]
            record["samples"].setdefault(track, []).append((now, (now - arrival) / 1e6))
            if frame.kind == "video":
                record.setdefault("first_rtp_video_ns", now)
                if frame.keyframe:
                    record.setdefault("keyframes_sent", []).append((now, frame.quality))
        return sent

    wants_keyframe = room_publisher.RoomPublisher._receiver_wants_keyframe

    def timed_wants_keyframe(self: Any, quality: int) -> None:
        session(self.resource_id).setdefault("keyframe_requests", []).append((time.monotonic_ns(), quality))
        wants_keyframe(self, quality)

    start = room_publisher.RoomPublisher.start

    async def timed_start(self: Any) -> Any:
        published = await start(self)
        session(self.resource_id)["published_ns"] = time.monotonic_ns()
        publishers[self.resource_id] = self
        return published

    media_pipeline._QueuedPipeline._deliver_frame = timed_deliver_frame  # type: ignore[method-assign]
    room_publisher.RoomPublisher._send = timed_send  # type: ignore[method-assign]
    room_publisher.RoomPublisher.start = timed_start  # type: ignore[method-assign]
    room_publisher.RoomPublisher._receiver_wants_keyframe = timed_wants_keyframe  # type: ignore[method-assign]
    try:
        return pyingress_main(["serve", "--config", config_path])
    finally:
        for resource_id, publisher in publishers.items():
            session(resource_id)["publisher_stats"] = asdict(publisher.stats)
            session(resource_id)["pacer_stats"] = asdict(publisher._pacer.stats)
            session(resource_id)["write_to_wire_ms"] = [x * 1000 for x in publisher.latencies]
        Path(out_path).write_text(json.dumps(sessions))


# -- the keyframe spotter in front of the RTMP port -----------------------------------------------------------------


class KeyframeRelay:
    """A TCP relay to pyingress's RTMP port that notes when the publisher's first video keyframe passes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.first_keyframe_at: float | None = None
        self.connected_at: float | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> "KeyframeRelay":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def reset(self) -> None:
        self.first_keyframe_at = self.connected_at = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected_at = self.connected_at or time.monotonic()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pump(reader, up_writer, spot=True), self._pump(up_reader, writer, spot=False))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spot: bool) -> None:
        chunks, skip = ChunkStream(), HANDSHAKE_BYTES
        try:
            while data := await reader.read(65536):
                now = time.monotonic()
                writer.write(data)
                if spot and self.first_keyframe_at is None:
                    body, skip = data[skip:], max(0, skip - len(data))
                    if body and any(is_video_keyframe(m.type_id, m.payload) for m in chunks.receive_data(body)):
                        self.first_keyframe_at = now
                await writer.drain()
        except (ConnectionError, RtmpProtocolError):
            pass
        finally:
            writer.close()


def is_video_keyframe(type_id: int, payload: bytes) -> bool:
    """An FLV video tag carrying a keyframe's coded data (not a sequence header), legacy or Enhanced RTMP."""
    if type_id != MessageType.VIDEO or len(payload) < 2 or (payload[0] >> 4) & 0x07 != 1:
        return False
    if payload[0] & 0x80:  # ExVideoTagHeader: packet type 1 CodedFrames or 3 CodedFramesX
        return payload[0] & 0x0F in (1, 3)
    return payload[1] == 1  # AVC NALU


# -- the room subscriber ----------------------------------------------------------------------------------------------


class FirstFrameViewer:
    """Joins before the encoder starts, subscribes the moment the video track appears, notes its first frame."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.first_frame: asyncio.Future[tuple[float, int, int]] = asyncio.get_running_loop().create_future()
        self.frames = 0
        self.subscribed_at: float | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def join(self, ws_url: str, token: str) -> None:
        self.room.on("track_subscribed", self._subscribed)
        await self.room.connect(ws_url, token, rtc.RoomOptions(auto_subscribe=True))

    def _subscribed(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self.subscribed_at = self.subscribed_at or time.monotonic()
            self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track)
        try:
            async for event in stream:
                self.frames += 1
                if not self.first_frame.done():
                    self.first_frame.set_result((time.monotonic(), event.frame.width, event.frame.height))
        finally:
            await stream.aclose()

    async def leave(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.room.disconnect()


# -- one run ---------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    resource_id: str = ""
    spawned: float = 0.0
    connected: float | None = None
    keyframe_at_door: float | None = None
    subscribed: float | None = None  # the viewer's video track subscribed
    first_frame: float | None = None
    first_frame_size: tuple[int, int] = (0, 0)
    frames_seen: int = 0
    timings: dict[str, Any] = field(default_factory=dict)  # from the pyingress process

    def since_door(self, key: str) -> float | None:
        value = self.timings.get(key)
        if value is None or self.keyframe_at_door is None:
            return None
        return value / 1e9 - self.keyframe_at_door


def ffmpeg_command(url: str, seconds: float) -> list[str]:
    return [
        *(FFMPEG, "-hide_banner", "-nostats", "-loglevel", "warning"),
        *("-re", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}"),
        *("-re", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0", "-g", "60"),
        *("-b:v", "2M", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2"),
        *("-f", "flv", url),
    ]


async def one_run(
    client: api.LiveKitAPI, ws_url: str, relay: KeyframeRelay, index: int, seconds: float, log: Path
) -> Run:
    room = f"bench-latency-{index}"
    info = await client.ingress.create_ingress(
        CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, room_name=room, participant_identity="encoder")
    )
    grants = api.VideoGrants(room_join=True, room=room, can_publish=False)
    token = api.AccessToken(API_KEY, API_SECRET).with_identity("viewer").with_grants(grants).to_jwt()
    viewer = FirstFrameViewer()
    await viewer.join(ws_url, token)
    relay.reset()
    run = Run(spawned=time.monotonic())
    with open(log, "ab") as log_file:
        encoder = subprocess.Popen(
            ffmpeg_command(f"rtmp://127.0.0.1:{relay.port}/live/{info.stream_key}", seconds),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        run.first_frame, *size = await asyncio.wait_for(viewer.first_frame, 60)
        run.first_frame_size = (size[0], size[1])
        await asyncio.to_thread(encoder.wait, seconds + 60)
    finally:
        if encoder.poll() is None:
            encoder.kill()
            encoder.wait()
        run.frames_seen, run.subscribed = viewer.frames, viewer.subscribed_at
        await viewer.leave()
    run.connected, run.keyframe_at_door = relay.connected_at, relay.first_keyframe_at
    listed = await client.ingress.list_ingress(ListIngressRequest(ingress_id=info.ingress_id))
    run.resource_id = listed.items[0].state.resource_id
    return run


# -- the whole benchmark ---------------------------------------------------------------------------------------------


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pyingress exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("pyingress not healthy in time")


async def bench(runs: int, seconds: float, work: Path) -> tuple[list[Run], dict[str, Any]]:
    options = RoomServerOptions(
        port=free_port(), rtc_tcp_port=free_port(), rtc_udp_port=free_port(2), log_path=str(work / "livekit.log")
    )
    room_server = LocalRoomServer(options)
    await asyncio.to_thread(room_server.start, 60)
    rtmp_port, http_port = free_port(), free_port()
    config = {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "ws_url": options.ws_url,
        "bind_address": "127.0.0.1",
        "rtmp_port": rtmp_port,
        "whip_port": http_port,
        "store_path": str(work / "pyingress.sqlite3"),
        "logging": {"level": "info"},
    }
    (work / "pyingress.yaml").write_text(yaml.safe_dump(config))
    out = work / "timings.json"
    with open(work / "pyingress.log", "ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child-serve", str(work / "pyingress.yaml"), "--out", str(out)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    relay = await KeyframeRelay(rtmp_port).start()
    results: list[Run] = []
    try:
        http_url = f"http://127.0.0.1:{http_port}"
        await asyncio.to_thread(wait_healthy, http_url, child)
        async with api.LiveKitAPI(http_url, API_KEY, API_SECRET) as client:
            for index in range(runs):
                results.append(await one_run(client, options.ws_url, relay, index, seconds, work / "ffmpeg.log"))
    finally:
        await relay.close()
        child.send_signal(signal.SIGINT)  # stop now; SIGTERM would drain
        await asyncio.to_thread(child.wait, 60)
        await asyncio.to_thread(room_server.stop)
    timings: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    for run in results:
        run.timings = timings.get(run.resource_id, {})
    return results, timings


def latency_table(results: list[Run], key: str = "samples") -> dict[str, dict[str, float]]:
    """Percentiles per track over every run, leaving out each run's first seconds."""
    pooled: dict[str, list[float]] = {}
    for run in results:
        first = run.timings.get("first_rtp_video_ns")
        for track, samples in run.timings.get(key, {}).items():
            start = (first or samples[0][0]) + SKIP_SECONDS * 1e9
            pooled.setdefault(track, []).extend(ms for at, ms in samples if at >= start)
    table = {}
    for track in ("HIGH", "MEDIUM", "LOW", "audio"):
        values = sorted(pooled.get(track, []))
        if values:
            table[track] = {
                "frames": len(values),
                "p50_ms": percentile(values, 0.5),
                "p95_ms": percentile(values, 0.95),
                "max_ms": values[-1],
            }
    return table


def first_keyframe_request(run: Run) -> tuple[str, float, float | None] | None:
    """(layer, asked, answered) of the first PLI/FIR from the room, in seconds since the keyframe at the door."""
    requests, sent = run.timings.get("keyframe_requests", []), run.timings.get("keyframes_sent", [])
    if not requests or run.keyframe_at_door is None:
        return None
    asked_ns, quality = requests[0]
    answer = next((at for at, q in sent if q == quality and at >= asked_ns), None)
    door = run.keyframe_at_door
    return QUALITY_NAMES[quality], asked_ns / 1e9 - door, None if answer is None else answer / 1e9 - door


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


def report(results: list[Run], seconds: float) -> dict[str, Any]:
    print(f"publish latency: {len(results)} run(s) × {seconds:g} s, default preset, 1280×720 30 fps, no B-frames")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs\n")
    print("time to first frame (from the first keyframe at the RTMP door unless noted)")
    header = ("run", "spawn→door", "→pipeline", "→encoded", "→published", "→1st RTP", "→subscribed", "→decoded", "size")
    print("  " + "".join(f"{h:>12}" for h in header))
    to_first: list[float] = []
    for i, run in enumerate(results):
        door = run.keyframe_at_door
        viewer = None if run.first_frame is None or door is None else run.first_frame - door
        if viewer is not None:
            to_first.append(viewer)
        cells = (
            str(i),
            ms(None if door is None else door - run.spawned),
            ms(run.since_door("first_keyframe_in_ns")),
            ms(run.since_door("first_video_out_ns")),
            ms(run.since_door("published_ns")),
            ms(run.since_door("first_rtp_video_ns")),
            ms(None if run.subscribed is None or door is None else run.subscribed - door),
            ms(viewer),
            "{}×{}".format(*run.first_frame_size),
        )
        print("  " + "".join(f"{c:>12}" for c in cells))
    if to_first:
        print(
            f"  median keyframe at door → first decoded frame: {statistics.median(to_first) * 1000:.0f} ms"
            " (goal ≤ 1000)"
        )
    for i, run in enumerate(results):
        answered = first_keyframe_request(run)
        if answered is not None:
            quality, asked, sent = answered
            print(
                f"  run {i}: the SFU's first keyframe request ({quality}) at {ms(asked)},"
                f" answered by a {quality} keyframe sent at {ms(sent)}"
            )
    table = latency_table(results)
    pipeline = latency_table(results, "pipeline")
    print(f"\nlatency per track after the first {SKIP_SECONDS:g} s of each run, p50 / p95 / max in ms")
    print(f"  {'track':>8}{'frames':>8}   {'ingest → RTP out':>22}   {'of which packet → encoded':>26}")
    for track, row in table.items():
        inner = pipeline.get(track, {"p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0})
        print(
            f"  {track:>8}{row['frames']:>8}   {row['p50_ms']:>6.1f} {row['p95_ms']:>6.1f} {row['max_ms']:>7.1f}"
            f"   {inner['p50_ms']:>9.1f} {inner['p95_ms']:>6.1f} {inner['max_ms']:>7.1f}"
        )
    for i, run in enumerate(results):
        stats, pacer = run.timings.get("publisher_stats"), run.timings.get("pacer_stats", {})
        waits = sorted(run.timings.get("write_to_wire_ms", []))
        if stats:
            drops = {k: v for k, v in stats.items() if k.startswith("dropped") and v}
            print(
                f"  run {i}: publisher write → wire p50 {percentile(waits, 0.5):.0f} ms (pacing clock re-anchored"
                f" {pacer.get('resyncs', 0)}×, trimmed by {pacer.get('trimmed', 0) * 1000:.0f} ms);"
                f" sent {stats['frames_sent']}, drops {drops or 'none'}"
            )
    bulky = ("samples", "pipeline", "write_to_wire_ms", "keyframe_requests", "keyframes_sent")
    return {
        "runs": [
            asdict(run) | {"timings": {k: v for k, v in run.timings.items() if k not in bulky}} for run in results
        ],
        "to_first_frame_median_ms": statistics.median(to_first) * 1000 if to_first else None,
        "latency": table,
        "pipeline_latency": pipeline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="1 run × 8 s, for CI")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0, help="media seconds per run")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child-serve", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_serve:
        return run_child(args.child_serve, args.out)
    runs, seconds = (1, 8.0) if args.smoke else (args.runs, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        results, _ = asyncio.run(bench(runs, seconds, Path(tmp)))
        summary = report(results, seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    ok = bool(results) and all(run.first_frame is not None and run.timings.get("samples") for run in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
