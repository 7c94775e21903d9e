"""URL pull benchmark: a file or live HLS over loopback HTTP → `pyingress serve` → livekit-server → a room subscriber.

What it measures (the issue-12 goals in brackets):

- **first frame**: CreateIngress (URL_INPUT, a 720p30 H.264/AAC MP4 served over HTTP) → the subscriber's first
  decoded video frame, the viewer already in the room [≤ 1.5 s];
- **CPU per media second, URL vs RTMP**: the same 720p file played by a URL ingress and pushed by ffmpeg over RTMP
  (``-re -c copy``: the same packets), the same default ladder, a viewer on the top layer, alternating runs in
  the same process of pyingress; CPU is the pyingress process tree's (service, zygote, media and demux workers —
  not ffmpeg, not livekit-server) over a steady window of the run, from /proc [URL within 5 % of RTMP];
- **live HLS delay**: Debian ffmpeg writes a live HLS stream (1 s segments) whose picture carries its own media
  time as 16 black/white bars (deciseconds); the subscriber reads the bars of every frame it decodes, and the
  delay is its wall time less the time the producer made that frame [≤ one segment behind the live edge, no
  growth over 10 minutes: p50 per minute printed];
- **RSS** of the pull session's processes (demux worker, media worker) and the service, every 10 s of a long file
  [flat over 10 minutes].

    .cache/venv/bin/python bench/url_pull.py                       # first frame ×5, CPU 3 runs each, live 2 min
    .cache/venv/bin/python bench/url_pull.py --live-minutes 10 --rss-minutes 10
    .cache/venv/bin/python bench/url_pull.py --smoke               # CI: one of each, short

The machine is shared (2 cores): livekit-server, the subscriber's decoder and ffmpeg run beside pyingress.
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, DeleteIngressRequest, IngressInput, ListIngressRequest

from bench.procfs import command_of, cpu_seconds, process_tree, rss_mb
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, playlist_segments, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

FFMPEG = "/usr/bin/ffmpeg"
BARS = 16  # bits of the decisecond counter drawn into the live stream's picture


# -- runs -----------------------------------------------------------------------------------------------------------


async def first_frame(peer: PyingressPeer, livekit: LivekitPeer, url: str, run: int) -> tuple[float, float]:
    """(CreateIngress answered, first decoded frame) seconds after the create was sent."""
    room, identity = f"bench-first-{run}", f"bench-first-{run}"
    async with (
        api.LiveKitAPI(peer.http_url, livekit.api_key, livekit.api_secret) as client,
        RoomSubscriber(livekit.ws_url, livekit.token("viewer", room)) as viewer,
    ):
        began = time.monotonic()
        info = await client.ingress.create_ingress(url_request(url, room, identity))
        answered = time.monotonic() - began
        at, _ = await viewer.first_video_frame(identity, timeout=30)
        await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
        await viewer.wait_gone(identity, timeout=10)
    return answered, at - began


async def _viewer_frames(viewer: RoomSubscriber, identity: str, stop: asyncio.Event) -> int:
    """Watch the top layer until ``stop``; returns the frames decoded (the SFU forwards what a viewer asks for)."""
    frames = 0
    while not stop.is_set():
        try:
            top = rtc.VideoQuality.VIDEO_QUALITY_HIGH
            sizes = await viewer.video_sizes(identity, top, frames=10, settle=0, timeout=5)
        except (TimeoutError, AssertionError):
            break  # the session ended (or a starved machine stalled the viewer): the CPU window is what counts
        frames += sum(sizes.values())
    return frames


async def cpu_run(
    peer: PyingressPeer, livekit: LivekitPeer, kind: str, clip: Path, url: str, run: int, window: tuple[float, float]
) -> float:
    """CPU seconds per media second of the pyingress tree while one session plays ``clip`` (seconds ``window``)."""
    room, identity = f"bench-cpu-{kind}-{run}", f"bench-cpu-{kind}-{run}"
    assert peer.process is not None
    async with (
        api.LiveKitAPI(peer.http_url, livekit.api_key, livekit.api_secret) as client,
        RoomSubscriber(livekit.ws_url, livekit.token("viewer", room)) as viewer,
    ):
        encoder = None
        if kind == "url":
            info = await client.ingress.create_ingress(url_request(url, room, identity))
        else:
            info = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name=room, room_name=room, participant_identity=identity
                )
            )
            command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "flv"]
            encoder = subprocess.Popen([*command, f"{info.url}/{info.stream_key}"])
        stop = asyncio.Event()
        try:
            await viewer.first_video_frame(identity, timeout=30)
            watching = asyncio.create_task(_viewer_frames(viewer, identity, stop))
            await asyncio.sleep(window[0])
            before = cpu_seconds(process_tree(peer.process.pid))
            await asyncio.sleep(window[1] - window[0])
            after = cpu_seconds(process_tree(peer.process.pid))
            stop.set()
            await watching
        finally:
            if encoder is not None:
                encoder.terminate()
                encoder.wait()
            await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            await viewer.wait_gone(identity, timeout=10)
    seconds = window[1] - window[0]
    service = (after.get(peer.process.pid, 0.0) - before.get(peer.process.pid, 0.0)) / seconds
    used = sum(after[pid] - before.get(pid, 0.0) for pid in after) / seconds
    print(f"    {kind}: service {service:.3f}, workers {used - service:.3f} CPU-s per media second")
    return used


def start_timecoded_hls(directory: Path, log: Path) -> subprocess.Popen[bytes]:
    """Live HLS whose frames show their own media time: bar i is white when bit i of the decisecond count is set."""
    directory.mkdir(parents=True, exist_ok=True)
    boxes = ",".join(
        f"drawbox=x={i * 40}:y=0:w=40:h=ih:color=white:t=fill:enable='gt(mod(floor(t*10/{2**i}),2),0)'"
        for i in range(BARS)
    )
    command = [FFMPEG, "-hide_banner", "-nostats", "-loglevel", "warning", "-y", "-re"]
    command += ["-f", "lavfi", "-i", "color=c=black:s=640x360:r=30", "-f", "lavfi", "-i", "sine=frequency=440"]
    command += ["-vf", boxes, "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"]
    command += ["-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-b:v", "600k", "-c:a", "aac"]
    command += ["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"]
    command += ["-hls_flags", "delete_segments+temp_file+program_date_time"]
    command += [str(directory / "index.m3u8")]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL)


def read_timecode(frame: rtc.VideoFrame) -> float:
    """The media time (s) the producer drew into ``frame`` (bars across the width, read on the middle row)."""
    i420 = frame.convert(rtc.VideoBufferType.I420)
    width, height = i420.width, i420.height
    row = bytes(i420.data[(height // 2) * width : (height // 2 + 1) * width])
    count = 0
    for bit in range(BARS):
        x = int((bit + 0.5) * width / BARS)
        if row[x] > 128:
            count |= 1 << bit
    return count / 10


def _p95(values: list[float]) -> float:
    return values[max(0, int(len(values) * 0.95) - 1)]


def first_segment_wall_time(playlist: Path) -> float | None:
    """The wall time (time.time()) at which the producer began media time 0: the PROGRAM-DATE-TIME ffmpeg wrote
    for its first segment (``index0.ts``), taken from its own clock when it started writing."""
    date = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line == "index0.ts" and date is not None:
            if date[-5] in "+-" and date[-3] != ":":
                date = date[:-2] + ":" + date[-2:]
            return datetime.fromisoformat(date).timestamp()
    return None


async def live_delay(peer: PyingressPeer, livekit: LivekitPeer, http: MediaServer, root: Path, minutes: float) -> None:
    producer = start_timecoded_hls(root / "live", root / "ffmpeg-live.log")
    began = time.monotonic()
    room, identity = "bench-live", "bench-live"
    try:
        while len(playlist_segments(root / "live" / "index.m3u8")) < 2:
            await asyncio.sleep(0.1)
        origin = first_segment_wall_time(root / "live" / "index.m3u8")
        assert origin is not None, "the producer wrote no PROGRAM-DATE-TIME for index0.ts"
        async with (
            api.LiveKitAPI(peer.http_url, livekit.api_key, livekit.api_secret) as client,
            RoomSubscriber(livekit.ws_url, livekit.token("viewer", room)) as viewer,
        ):
            await client.ingress.create_ingress(url_request(http.file_url("live/index.m3u8"), room, identity))
            pub, track = await viewer._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, 30)
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
            stream = rtc.VideoStream(track)
            per_minute: dict[int, list[tuple[float, float]]] = {}
            end = time.monotonic() + minutes * 60
            count = 0
            async for event in stream:
                now = time.monotonic()
                count += 1
                if count % 5 == 0:  # every 5th frame: the reading costs the bench a little CPU
                    made = read_timecode(event.frame)
                    # Playback runs this long behind segment publication: a frame made at segment time f is shown
                    # x + f after its segment (finished 1 - f after the frame) was published; x is the lag.
                    published = origin + made + 1
                    shown = time.time()
                    samples = per_minute.setdefault(int((now - began) // 60), [])
                    samples.append((shown - origin - made, shown - published))
                if now >= end:
                    break
            await stream.aclose()
        print("live HLS (1 s segments), per minute: frame made → shown p50 / p95; playback behind segment")
        print("publication p50 / p95 (made → shown less the segment: the lag behind the live edge); frames read")
        for minute, pairs in sorted(per_minute.items()):
            delays, lags = sorted(d for d, _ in pairs), sorted(lag for _, lag in pairs)
            print(
                f"  minute {minute:2d}: {statistics.median(delays):5.2f} s / {_p95(delays):5.2f} s;"
                f"  {statistics.median(lags):5.2f} s / {_p95(lags):5.2f} s; {len(pairs)}"
            )
    finally:
        producer.kill()
        producer.wait()


async def rss_soak(peer: PyingressPeer, livekit: LivekitPeer, url: str, minutes: float, every: float) -> None:
    """RSS of the service, the session's media worker and its demux worker while a long file plays."""
    assert peer.process is not None
    room, identity = "bench-rss", "bench-rss"
    async with (
        api.LiveKitAPI(peer.http_url, livekit.api_key, livekit.api_secret) as client,
        RoomSubscriber(livekit.ws_url, livekit.token("viewer", room)) as viewer,
    ):
        info = await client.ingress.create_ingress(url_request(url, room, identity))
        await viewer.first_video_frame(identity, timeout=30)
        resource = (await client.ingress.list_ingress(ListIngressRequest(ingress_id=info.ingress_id))).items[0]
        demux = next(
            int(line.rsplit(" ", 1)[1])
            for line in reversed(peer.log().splitlines())
            if f"URL pull {resource.state.resource_id}: worker pid " in line
        )
        zygotes = [p for p in process_tree(peer.process.pid) if "pyingress.media.zygote" in command_of(p)]
        media = [p for p in process_tree(zygotes[0])[1:] if p != demux]
        print(f"RSS (MB) every {every:g} s: service / media worker / demux worker")
        began = time.monotonic()
        samples: list[tuple[float, float, float]] = []
        while time.monotonic() - began < minutes * 60:
            sample = (rss_mb(peer.process.pid), sum(rss_mb(p) for p in media), rss_mb(demux))
            samples.append(sample)
            print(f"  {time.monotonic() - began:6.0f} s  {sample[0]:6.1f} / {sample[1]:6.1f} / {sample[2]:6.1f}")
            await asyncio.sleep(every)
        await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
    if len(samples) >= 4:
        settled, last = samples[len(samples) // 4], samples[-1]
        growth = ", ".join(f"{b - a:+.1f}" for a, b in zip(settled, last, strict=True))
        print(f"  growth from the first quarter to the end (MB): {growth}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-url-") as tmp:
        root = Path(tmp)
        seconds = 10 if args.smoke else 30
        clip = make_file(root, "clip720.mp4", duration=seconds)
        livekit = LivekitPeer(root).start()
        peer = PyingressPeer(root / "pyingress", livekit.ws_url, {"logging": {"level": "info"}}).start()
        try:
            with MediaServer(root) as http:
                url = http.file_url("clip720.mp4")
                await first_frame(peer, livekit, url, -1)  # warm: the zygote, the room
                if "first" in args.parts:
                    runs = 1 if args.smoke else 5
                    timings = [await first_frame(peer, livekit, url, run) for run in range(runs)]
                    print("CreateIngress → answer / first decoded frame at the viewer (720p MP4 over loopback HTTP):")
                    for answered, first in timings:
                        print(f"  {answered:5.2f} s / {first:5.2f} s")
                    firsts = [first for _, first in timings]
                    print(f"  first frame: median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s")
                if "cpu" in args.parts:
                    window = (2.0, 7.0) if args.smoke else (4.0, 24.0)
                    ratios = []
                    for run in range(1 if args.smoke else args.cpu_runs):
                        rtmp = await cpu_run(peer, livekit, "rtmp", clip, url, run, window)
                        pull = await cpu_run(peer, livekit, "url", clip, url, run, window)
                        ratios.append(pull / rtmp)
                        print(f"  CPU-s per media second: RTMP {rtmp:.3f}, URL {pull:.3f}, URL/RTMP {pull / rtmp:.3f}")
                    print(f"URL/RTMP CPU: median {statistics.median(ratios):.3f} over {len(ratios)} paired runs")
                if "live" in args.parts:
                    await live_delay(peer, livekit, http, root, 0.4 if args.smoke else args.live_minutes)
                if args.rss_minutes:
                    make_file(root, "clip.ts", duration=args.rss_minutes * 60 + 30, size="1280x720")
                    await rss_soak(peer, livekit, http.file_url("clip.ts"), args.rss_minutes, 10.0)
        finally:
            peer.stop()
            livekit.stop()


def cli(argv: list[str] | None = None, runner: Callable[..., object] = asyncio.run) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--cpu-runs", type=int, default=3)
    parser.add_argument("--live-minutes", type=float, default=2.0)
    parser.add_argument("--rss-minutes", type=float, default=0.0)
    parser.add_argument("--parts", default="first,cpu,live", help="which of first,cpu,live to run (default: all)")
    runner(main(parser.parse_args(argv)))


if __name__ == "__main__":
    cli()
