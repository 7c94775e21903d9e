"""Bad input against a live server while a good ffmpeg publish keeps streaming next to it.

Every case: the offending connection gets a clear error (status to the encoder where RTMP can carry one, and the
server's log line) and is closed; the good publish keeps delivering packets; every source handed out for a bad
connection has ended (nothing is left looking live).
"""

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pyingress.control.errors import INGRESS_DISABLED, INGRESS_NOT_FOUND
from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.flv import VideoPacketType, aac_tag, ex_video_tag, legacy_video_tag
from pyingress.ingest.rtmp.messages import COMMAND_CHUNK_STREAM, VIDEO_CHUNK_STREAM, MessageType, RtmpMessage
from pyingress.ingest.rtmp.server import RtmpLimits, RtmpServer
from pyingress.ingest.source import EndReason, MediaSource
from tests.harness.publishers import TestPattern, ffmpeg_command
from tests.ingest.rtmp.media_check import collect, decode_audio, decode_video
from tests.ingest.rtmp.publishing import AsyncPublisher

LIMITS = RtmpLimits(handshake_timeout=1.0, publish_timeout=2.0, read_timeout=2.0, admit_timeout=0.5)
LOGGER = "pyingress.ingest.rtmp"


async def admit(stream_key: str, app: str) -> None:
    if stream_key == "DISABLED":
        raise INGRESS_DISABLED
    if stream_key == "SLOW":
        await asyncio.sleep(5)
    if stream_key == "CRASH":
        raise RuntimeError("store unreachable")
    if stream_key.startswith("WRONG"):
        raise INGRESS_NOT_FOUND


@dataclass
class Ingest:
    server: RtmpServer
    good: MediaSource | None = None
    good_packets: int = 0
    others: list[MediaSource] = field(default_factory=list)
    taken: asyncio.Queue[MediaSource] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Future[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        return self.server.ports["rtmp"]

    async def dispatch(self) -> None:
        async for source in self.server:
            if source.stream_key == "GOOD":
                self.good = source
                self.tasks.add(asyncio.ensure_future(self._count_good(source)))
            else:
                self.others.append(source)
                await self.taken.put(source)

    async def _count_good(self, source: MediaSource) -> None:
        async for _ in source:
            self.good_packets += 1

    async def next_source(self, timeout: float = 5.0) -> MediaSource:
        return await asyncio.wait_for(self.taken.get(), timeout)

    async def assert_good_streaming(self) -> None:
        before = self.good_packets
        async with asyncio.timeout(5):
            while self.good_packets < before + 5:
                await asyncio.sleep(0.05)
        assert self.good is not None and not self.good.ended

    async def assert_others_ended(self) -> None:
        async with asyncio.timeout(5):
            for source in self.others:
                await source.wait_ended()


@pytest.fixture(scope="module")
async def ingest() -> AsyncIterator[Ingest]:
    server = RtmpServer(admit, host="127.0.0.1", port=0, limits=LIMITS)
    await server.start()
    state = Ingest(server)
    dispatcher = asyncio.ensure_future(state.dispatch())
    pattern = TestPattern(width=320, height=240, fps=10, duration=600, gop=10, video_bitrate="200k")
    good = await asyncio.create_subprocess_exec(
        *ffmpeg_command(pattern, f"rtmp://127.0.0.1:{state.port}/live/GOOD"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(20):
        while state.good_packets < 10:
            await asyncio.sleep(0.05)
    yield state
    good.kill()
    await good.wait()
    dispatcher.cancel()
    await server.close()


@pytest.fixture(autouse=True)
async def others_unharmed(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield
    await ingest.assert_good_streaming()
    await ingest.assert_others_ended()


async def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while text not in caplog.text:
            await asyncio.sleep(0.02)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await reader.read(65536):
            pass


async def raw(ingest: Ingest, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def connected(ingest: Ingest) -> AsyncPublisher:
    publisher = await AsyncPublisher.open(ingest.port)
    await publisher.connect()
    return publisher


async def publishing(ingest: Ingest, key: str) -> tuple[AsyncPublisher, MediaSource]:
    publisher = await AsyncPublisher.open(ingest.port)
    status = await publisher.publish(f"live/{key}")
    assert status.code == "NetStream.Publish.Start"
    return publisher, await ingest.next_source()


async def run_ffmpeg(pattern: TestPattern, url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *ffmpeg_command(pattern, url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode(errors="replace")


# -- refused publishes ------------------------------------------------------------------------------------------


async def test_unknown_stream_key_is_refused_with_livekit_text(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    pattern = TestPattern(width=320, height=240, fps=10, duration=2, realtime=False)
    code, output = await run_ffmpeg(pattern, f"rtmp://127.0.0.1:{ingest.port}/live/WRONGKEY")
    assert code != 0
    assert "ingress does not exist" in output  # FFmpeg prints the onStatus description
    await logged(caplog, "publish of key 'WRONGKEY' refused: ingress does not exist")


async def test_empty_stream_key_is_refused(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await AsyncPublisher.open(ingest.port)
    status = await publisher.publish("live/")
    assert (status.level, status.code, status.description) == (
        "error",
        "NetStream.Publish.BadName",
        "missing stream key",
    )
    await publisher.wait_closed()
    await logged(caplog, "closed: missing stream key")


async def test_disabled_ingress_is_refused(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await AsyncPublisher.open(ingest.port)
    status = await publisher.publish("live/DISABLED")
    assert (status.code, status.description) == ("NetStream.Publish.Denied", "session is disabled")
    await publisher.wait_closed()


async def test_admission_crash_is_an_internal_error_for_this_connection_only(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await AsyncPublisher.open(ingest.port)
    status = await publisher.publish("live/CRASH")
    assert (status.code, status.description) == ("NetStream.Publish.Denied", "internal error")
    await publisher.wait_closed()
    await logged(caplog, "store unreachable")


async def test_slow_admission_times_out(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await AsyncPublisher.open(ingest.port)
    status = await publisher.publish("live/SLOW")
    assert status.description == "admission timed out"
    await publisher.wait_closed()


# -- handshake --------------------------------------------------------------------------------------------------


async def test_http_request_on_the_rtmp_port(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await raw(ingest, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await closed_by_server(reader)
    await logged(caplog, "the client sent HTTP, not an RTMP handshake")
    writer.close()


async def test_encrypted_rtmp_is_refused(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await raw(ingest, b"\x06" + bytes(1536))
    await closed_by_server(reader)
    await logged(caplog, "encrypted RTMP (RTMPE, version 6) is not supported")
    writer.close()


async def test_truncated_c1_then_hang_up(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    _, writer = await raw(ingest, b"\x03" + bytes(700))
    writer.close()
    await logged(caplog, "connection closed during the handshake (waiting for C0/C1)")


async def test_truncated_c1_then_silence(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await raw(ingest, b"\x03" + bytes(700))
    await closed_by_server(reader, timeout=3)
    await logged(caplog, "handshake not completed within 1 s (still waiting for C0/C1)")
    writer.close()


async def test_slow_loris_handshake_is_cut_at_the_deadline(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await raw(ingest, b"\x03")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with contextlib.suppress(ConnectionError):
        for _ in range(100):  # one byte every 50 ms: always "active", never done
            writer.write(b"\x00")
            await writer.drain()
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
    await closed_by_server(reader, timeout=3)
    assert loop.time() - started < 3
    await logged(caplog, "handshake not completed within 1 s")
    writer.close()


async def test_missing_c2_is_cut_at_the_deadline(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await raw(ingest, b"\x03" + bytes(1536))
    await closed_by_server(reader, timeout=3)
    await logged(caplog, "still waiting for C2")
    writer.close()


# -- chunk stream -----------------------------------------------------------------------------------------------


async def after_handshake(ingest: Ingest, data: bytes) -> AsyncPublisher:
    publisher = await AsyncPublisher.open(ingest.port, auto_connect=False)
    await publisher.handshake()
    publisher.writer.write(data)
    await publisher.writer.drain()
    return publisher


def fmt0(csid: int, length: int, type_id: int, stream_id: int = 0) -> bytes:
    return bytes([csid]) + b"\x00\x00\x00" + length.to_bytes(3, "big") + bytes([type_id]) + struct.pack("<I", stream_id)


async def test_garbage_after_the_handshake(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await after_handshake(ingest, b"\xff" * 64)
    await publisher.wait_closed()
    await logged(caplog, "chunk stream 63 starts with a type-3 header")


async def test_16_mib_message_length(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    # 0xFFFFFF, the largest length a chunk header can state (16 MiB - 1): refused from the header alone
    publisher = await after_handshake(ingest, fmt0(6, 0xFFFFFF, MessageType.VIDEO, 1))
    await publisher.wait_closed()
    await logged(caplog, "message of 16777215 bytes on chunk stream 6 exceeds the limit of 8388608 bytes")


@pytest.mark.parametrize("size", [0, 2**31])
async def test_invalid_chunk_size(ingest: Ingest, caplog: pytest.LogCaptureFixture, size: int) -> None:
    publisher = await after_handshake(ingest, fmt0(2, 4, MessageType.SET_CHUNK_SIZE) + struct.pack(">I", size))
    await publisher.wait_closed()
    await logged(caplog, f"Set Chunk Size {size} is out of range (1..2147483647)")


async def test_abort_of_an_unknown_chunk_stream(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await after_handshake(ingest, fmt0(2, 4, MessageType.ABORT) + struct.pack(">I", 42))
    await publisher.wait_closed()
    await logged(caplog, "Abort for chunk stream 42, which was never used")


async def test_amf0_depth_bomb(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await AsyncPublisher.open(ingest.port, auto_connect=False)
    await publisher.handshake()
    bomb = amf0.encode_values("connect", 1.0) + b"\x0a\x00\x00\x00\x01" * 3000 + b"\x05"
    publisher.client.chunks.send(RtmpMessage(MessageType.COMMAND_AMF0, 0, 0, bomb), COMMAND_CHUNK_STREAM)
    await publisher.flush()
    await publisher.wait_closed()
    await logged(caplog, "AMF value nested deeper than 32 levels")


# -- commands ---------------------------------------------------------------------------------------------------


async def test_publish_before_connect(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await AsyncPublisher.open(ingest.port, auto_connect=False)
    await publisher.handshake()
    publisher.client.send_command("publish", None, "KEY", "live", stream_id=1)
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert [s.code for s in statuses] == ["NetConnection.Call.Failed"]
    await logged(caplog, "'publish' before 'connect'")


async def test_an_unpublish_after_a_long_publish_is_not_hung_up_on(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    """The wait for a publish starts again at the unpublish: a publish that lasted longer than publish_timeout (2 s
    here) used to be hung up on at once, with "no publish within 2 s" in the log."""
    publisher, source = await publishing(ingest, "LONG")
    for n in range(25):  # 2.5 s of audio, longer than publish_timeout
        publisher.client.send_audio(n * 100, aac_tag("frame", b"x"))
        await publisher.flush()
        await asyncio.sleep(0.1)
    publisher.client.send_command("FCUnpublish", None, "LONG", stream_id=0)
    publisher.client.send_command("deleteStream", None, float(publisher.client.stream_id), stream_id=0)
    await publisher.flush()
    await source.wait_ended()
    assert source.end_reason is EndReason.UNPUBLISHED and source.error is None
    await asyncio.sleep(0.5)
    assert "no publish within" not in caplog.text
    await publisher.close()


async def test_two_publishes_on_one_connection(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher, source = await publishing(ingest, "TWICE")
    publisher.client.send_command("publish", None, "OTHER", "live", stream_id=publisher.client.stream_id)
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert statuses[-1].description == "this connection is already publishing"
    await source.wait_ended()
    assert (
        source.end_reason is EndReason.ERROR and source.error == "a second 'publish' on one connection is not allowed"
    )


async def test_media_before_publish(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await connected(ingest)
    publisher.client.send_audio(0, aac_tag("frame", b"x"))
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert statuses[-1].description == "media arrived before 'publish'"


async def test_play_is_refused(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await connected(ingest)
    publisher.client.send_command("play", None, "GOOD", stream_id=1)
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert statuses[-1].code == "NetStream.Play.Failed"


async def test_connection_that_never_publishes_is_closed(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher = await connected(ingest)
    await publisher.wait_closed(timeout=4)
    await logged(caplog, "no publish within 2 s")


async def test_publish_and_garbage_in_one_segment_is_not_admitted(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await connected(ingest)
    publisher.client.send_command("publish", None, "live/GARBLED", "live", stream_id=1)
    publisher.writer.write(publisher.client.data_to_send() + b"\xff" * 8)
    await publisher.wait_closed()
    await logged(caplog, "chunk stream 63 starts with a type-3 header")
    assert ingest.taken.empty(), "a connection that broke the protocol must not reach admission"


async def test_bad_media_sent_with_the_publish_ends_the_admitted_source(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await connected(ingest)
    publisher.client.send_command("publish", None, "live/EARLY", "live", stream_id=1)
    publisher.client.stream_id = 1
    publisher.client.send_video(0, b"\x12" + bytes(10))  # Sorenson H.263, before the server said Start
    await publisher.flush()
    source = await ingest.next_source()
    await publisher.wait_closed()
    await source.wait_ended()
    assert source.end_reason is EndReason.ERROR and source.error is not None and "Sorenson" in source.error


# -- media ------------------------------------------------------------------------------------------------------


async def test_media_without_a_sequence_header(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher, source = await publishing(ingest, "NOHEADER")
    for ts in range(0, 6000, 40):
        publisher.client.send_video(ts, legacy_video_tag("frame", b"\x00\x00\x00\x02\x09\xf0", keyframe=True))
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert "arrived without a sequence header" in statuses[-1].description
    received = await collect(source)
    assert received.end_reason is EndReason.ERROR and received.packets["video"] == []
    assert received.error is not None and "video (h264) arrived without a sequence header" in received.error


async def test_unsupported_codec(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher, source = await publishing(ingest, "H263")
    publisher.client.send_video(0, b"\x12" + bytes(100))  # Sorenson H.263 keyframe
    await publisher.flush()
    statuses = await publisher.wait_closed()
    assert statuses[-1].description.startswith("video codec Sorenson H.263 is not supported")
    await source.wait_ended()
    assert source.end_reason is EndReason.ERROR


async def test_abrupt_reset_mid_message(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher, source = await publishing(ingest, "RESET")
    publisher.client.send_video(0, ex_video_tag("av1", VideoPacketType.CODED_FRAMES, bytes(20000), keyframe=True))
    data = publisher.client.data_to_send()
    publisher.writer.write(data[: len(data) // 2])
    await publisher.writer.drain()
    sock = publisher.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close → RST
    publisher.writer.transport.abort()
    await asyncio.wait_for(source.wait_ended(), 5)
    assert source.end_reason is EndReason.DISCONNECTED


async def test_encoder_goes_silent_while_publishing(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    publisher, source = await publishing(ingest, "SILENT")
    await publisher.wait_closed(timeout=4)
    await logged(caplog, "no data for 2 s")
    assert source.end_reason is EndReason.DISCONNECTED


async def test_audio_only_publish_is_ingested(ingest: Ingest) -> None:
    pattern = TestPattern(fps=10, duration=2, realtime=False, video_codec="")
    pusher = asyncio.ensure_future(run_ffmpeg(pattern, f"rtmp://127.0.0.1:{ingest.port}/live/AUDIOONLY"))
    received = await collect(await ingest.next_source(10))
    code, output = await pusher
    assert code == 0, output
    assert set(received.descriptions) == {"audio"} and received.packets["video"] == []
    assert abs(decode_audio(received).samples - 2 * 48000) <= 2 * 48000 * 0.02


async def test_video_only_publish_is_ingested(ingest: Ingest) -> None:
    pattern = TestPattern(width=320, height=240, fps=10, duration=2, realtime=False, audio_codec="", gop=10)
    pusher = asyncio.ensure_future(run_ffmpeg(pattern, f"rtmp://127.0.0.1:{ingest.port}/live/VIDEOONLY"))
    received = await collect(await ingest.next_source(10))
    code, output = await pusher
    assert code == 0, output
    assert set(received.descriptions) == {"video"} and received.packets["audio"] == []
    assert len(decode_video(received).pts) == 20


async def test_consumer_close_hangs_up_with_the_reason(ingest: Ingest) -> None:
    publisher, source = await publishing(ingest, "KICKED")
    source.close("a newer publisher took this stream key")
    statuses = await publisher.wait_closed()
    assert statuses[-1].description == "a newer publisher took this stream key"
    assert source.end_reason is EndReason.CLOSED


async def test_connections_per_ip_are_limited() -> None:
    async with RtmpServer(
        admit, host="127.0.0.1", port=0, limits=RtmpLimits(max_connections_per_ip=2, handshake_timeout=2)
    ) as server:
        port = server.ports["rtmp"]
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await closed_by_server(reader, timeout=2)
        writer.close()
        for _, held_writer in held:
            held_writer.close()
        await asyncio.sleep(0.1)
        again = await AsyncPublisher.open(port)  # slots are free again once the others are gone
        await again.connect()
        await again.close()


def test_bad_message_helpers_are_what_they_claim() -> None:
    # Guards the hand-made bytes above: the length field and chunk stream id are where a reader looks.
    header = fmt0(6, 0xFFFFFF, MessageType.VIDEO, 1)
    assert len(header) == 12 and int.from_bytes(header[4:7], "big") == 0xFFFFFF and header[0] == VIDEO_CHUNK_STREAM
