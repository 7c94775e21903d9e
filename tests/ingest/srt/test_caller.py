"""The SRT pull door against a real SRT server of ours (libsrt through the binding, sending a TS clip)."""

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.ingest.source import EndReason, MediaSource
from pyingress.ingest.srt.caller import SrtPullDoor, SrtPullSettings
from pyingress.ingest.srt.libsrt import SrtError, SrtSocket
from pyingress.media.packets import EncodedPacket, StreamDescription
from tests.harness.publishers import TestPattern, make_clip
from tests.ingest.srt.pair import listening


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("caller") / "clip.ts"
    return make_clip(TestPattern(width=320, height=240, fps=30, duration=5, gop=30), path, fmt="mpegts").read_bytes()


class Server:
    """Accepts callers one after another and sends each ``data`` paced roughly live, then hangs up."""

    def __init__(self, listener: SrtSocket, data: bytes, seconds: float) -> None:
        self.listener = listener
        self.data = data
        self.seconds = seconds
        self.served = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except SrtError:
                return
            self.served += 1
            chunks = [self.data[i : i + 1316] for i in range(0, len(self.data), 1316)]
            try:
                for chunk in chunks:
                    sock.send(chunk)
                    time.sleep(self.seconds / len(chunks))
                time.sleep(0.5)
            except SrtError:
                pass
            sock.close()


@pytest.fixture
def server(clip: bytes) -> Iterator[tuple[int, Server]]:
    with listening() as listener:
        yield listener.local_address()[1], Server(listener, clip, seconds=1.5)


async def _drain(source: MediaSource, until: float) -> list[object]:
    items: list[object] = []

    async def read() -> None:
        async for item in source:
            items.append(item)

    reader = asyncio.create_task(read())
    await asyncio.wait([reader], timeout=until)
    reader.cancel()
    return items


async def test_a_pull_reads_the_stream_and_calls_again_after_the_server_hangs_up(server: tuple[int, Server]) -> None:
    port, srt = server
    door = SrtPullDoor(SrtPullSettings(read_timeout=2, media_timeout=30))
    info = IngressInfo(input_type=IngressInput.URL_INPUT, url=f"srt://127.0.0.1:{port}?latency=80")
    source = door.open(info, "UR_test_pull")
    assert source.remote_address == f"srt://127.0.0.1:{port}" and list(door.pulls) == ["UR_test_pull"]
    items = await _drain(source, until=6)
    assert srt.served >= 2  # the server hung up after its clip; the pull called again
    descriptions = [i for i in items if isinstance(i, StreamDescription)]
    packets = [i for i in items if isinstance(i, EncodedPacket)]
    assert {d.kind for d in descriptions} == {"video", "audio"} and len(descriptions) >= 4  # described again
    assert len([p for p in packets if p.kind == "video"]) > 100
    source.close("test over")
    for _ in range(50):
        if not door.pulls:
            break
        await asyncio.sleep(0.1)
    assert door.pulls == {} and source.end_reason == EndReason.CLOSED


async def test_nobody_there_ends_in_error_after_the_media_timeout() -> None:
    with listening() as listener:
        port = listener.local_address()[1]
    door = SrtPullDoor(SrtPullSettings(read_timeout=1, media_timeout=2))
    info = IngressInfo(input_type=IngressInput.URL_INPUT, url=f"srt://127.0.0.1:{port}?conntimeo=300")
    source = door.open(info, "UR_test_nobody")
    await asyncio.wait_for(source.wait_ended(), 15)
    assert source.end_reason == EndReason.ERROR and source.error is not None
    assert source.error.startswith(f"source encoder not ready (srt://127.0.0.1:{port}: ")
    assert "connection timed out" in source.error


def test_a_refused_url_raises_before_anything_starts() -> None:
    door = SrtPullDoor(SrtPullSettings())
    with pytest.raises(Exception, match="invalid SRT URL: no port"):
        door.open(IngressInfo(input_type=IngressInput.URL_INPUT, url="srt://host"), "UR_x")
    assert door.pulls == {}
