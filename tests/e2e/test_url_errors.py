"""End to end: bad URLs and bad files each end their URL ingress in ERROR with a message that names the cause,
within the fetch timeouts, while an RTMP session on the same service keeps its frames."""

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api

from tests.e2e.room_session import ERROR, PUBLISHING, create_rtmp_ingress, ingress_state, push, stop_encoder
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern
from tests.harness.pull_media import make_file, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

READ_TIMEOUT = 2.0
OPEN_TIMEOUT = 2.0


def _bad_files(directory: Path) -> None:
    clip = make_file(directory, "clip720.mp4", duration=6, size="640x360")
    data = clip.read_bytes()
    (directory / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    (directory / "empty.mp4").write_bytes(b"")
    (directory / "garbage.mp4").write_bytes(bytes(range(256)) * 512)
    (directory / "notes.txt").write_text("just some text, not a video\n" * 50)
    (directory / "missing.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n"
        + "".join(f"#EXTINF:1.0,\ngone{n}.ts\n" for n in range(6))
        + "#EXT-X-ENDLIST\n"
    )
    make_file(directory, "clip.flv", duration=2, size="320x180")


# (path on the media server or a whole URL, what the error must contain)
CASES = [
    ("status/404", "HTTP 404 Not Found from {http}/status/404"),
    ("status/403", "HTTP 403 Forbidden from {http}/status/403"),
    ("status/500", "HTTP 500 Internal Server Error from {http}/status/500"),
    ("http://127.0.0.1:{closed}/clip.mp4", "connection refused by 127.0.0.1:{closed}"),
    ("http://media.nonexistent.invalid/clip.mp4", "cannot resolve host media.nonexistent.invalid"),
    ("{https}/files/clip720.mp4", "TLS certificate of 127.0.0.1 not trusted: self-signed certificate"),
    ("https://127.0.0.1:{http_port}/files/clip720.mp4", "TLS handshake with 127.0.0.1:{http_port} failed"),
    ("stall/clip720.mp4?after=150000", "stopped sending: no data for 2 s after 150000 bytes"),
    ("slow/clip720.mp4?delay=30", "no answer from 127.0.0.1:{http_port} within 2 s"),
    ("lie/clip720.mp4", "{http}/lie/clip720.mp4 ended early: the connection closed after"),
    ("files/truncated.mp4", "the file is truncated"),
    ("files/empty.mp4", "{http}/files/empty.mp4 is empty (0 bytes)"),
    ("files/garbage.mp4", "cannot read {http}/files/garbage.mp4 as media"),
    ("html", "unsupported mime type (text/html) for the source media"),
    ("files/notes.txt", "unsupported mime type (text/plain) for the source media"),
    ("files/clip.flv", "unsupported mime type (video/x-flv) for the source media"),
    ("loop", "redirect loop: {http}/loop redirects back to itself"),
    ("self.m3u8", "HLS playlist {http}/self.m3u8 lists itself as a variant"),
    ("files/missing.m3u8", "3 HLS segments in a row could not be fetched; last: HTTP 404 Not Found"),
]


async def test_bad_urls_and_files_end_in_error_with_words_beside_a_running_rtmp_session(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    _bad_files(tmp_path)
    peer = pyingress_factory(
        {
            "url_pull": {"open_timeout": OPEN_TIMEOUT, "read_timeout": READ_TIMEOUT},
            # Every failing pull at once next to a transcoded RTMP session: their reservations must not refuse them.
            "cpu_cost": {"url_cpu_cost": 0.01},
        }
    )
    room, identity = "url-errors-rtmp", "url-errors-rtmp-source"
    with MediaServer(tmp_path) as http, MediaServer(tmp_path, tls=True) as https:
        values = {"http": http.base_url, "https": https.base_url, "http_port": http.port, "closed": free_port()}
        async with (
            api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
            RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
        ):
            rtmp = await create_rtmp_ingress(client, room, identity)
            encoder = push(TestPattern(width=640, height=360, duration=90), rtmp, tmp_path / "ffmpeg.log")
            try:
                await viewer.first_video_frame(identity, timeout=30)

                async def fail(number: int, target: str, expected: str) -> tuple[str, float, str]:
                    url = target.format(**values)
                    url = url if "://" in url else http.url(url)
                    began = time.monotonic()
                    info = await client.ingress.create_ingress(url_request(url, f"url-error-{number}", f"bad-{number}"))
                    deadline = began + OPEN_TIMEOUT * 4 + READ_TIMEOUT * 2 + 15
                    state = await ingress_state(client, info.ingress_id)
                    while state.status != ERROR and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)  # 19 pollers at once: not more than the service they watch
                        state = await ingress_state(client, info.ingress_id)
                    return expected.format(**values), time.monotonic() - began, state.error

                failing = asyncio.gather(*(fail(n, target, expected) for n, (target, expected) in enumerate(CASES)))
                # Meanwhile the RTMP viewer keeps getting frames (30 fps; generous on a loaded 2-core machine).
                sizes = await viewer.video_sizes(identity, frames=90, settle=0.0, timeout=15)
                results = await failing
                assert sum(sizes.values()) == 90
                assert (await ingress_state(client, rtmp.ingress_id)).status == PUBLISHING
            finally:
                stop_encoder(encoder)
    wrong = [(expected, error) for expected, _, error in results if expected not in error]
    assert wrong == [], "\n".join(f"wanted {e!r}\n   got {g!r}" for e, g in wrong)
    slow = [(expected, round(took, 1)) for expected, took, _ in results if took > 15]
    assert slow == []
    print("\n".join(f"{took:5.2f} s  {error}" for _, took, error in results))


async def test_a_worker_killed_mid_file_ends_only_its_session(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    make_file(tmp_path, "clip720.mp4", duration=20, size="640x360")
    peer = pyingress_factory({"cpu_cost": {"url_cpu_cost": 0.1}})
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        with MediaServer(tmp_path) as http:
            url = http.file_url("clip720.mp4")
            victim = await client.ingress.create_ingress(url_request(url, "url-kill-a", "kill-a"))
            other = await client.ingress.create_ingress(url_request(url, "url-kill-b", "kill-b"))
            for ingress in (victim, other):
                state = await ingress_state(client, ingress.ingress_id)
                deadline = time.monotonic() + 20
                while state.status != PUBLISHING and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    state = await ingress_state(client, ingress.ingress_id)
                assert state.status == PUBLISHING, state
            victim_resource = (await ingress_state(client, victim.ingress_id)).resource_id
            pid = _pull_worker_pid(peer, victim_resource)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            state = await ingress_state(client, victim.ingress_id)
            while state.status != ERROR and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                state = await ingress_state(client, victim.ingress_id)
            assert state.error == "URL pull worker exited unexpectedly (killed by SIGKILL)"
            assert (await ingress_state(client, other.ingress_id)).status == PUBLISHING
            assert peer.process is not None and peer.process.poll() is None


def _pull_worker_pid(peer: PyingressPeer, resource_id: str) -> int:
    """The demux worker of ``resource_id``, as the service logged it when it started."""
    for line in reversed(peer.log().splitlines()):
        if f"URL pull {resource_id}: worker pid " in line:
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no worker pid logged for {resource_id}")
