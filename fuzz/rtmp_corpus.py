"""Regenerate the RTMP fuzz seed corpus (tests/ingest/rtmp/corpus/) from real publishers.

Records what Debian ffmpeg, GStreamer rtmp2sink and our E-RTMP test client send to a recording server, then
writes per-target seeds: handshakes, chunk streams, whole connections, AMF0 command bodies and FLV tag bodies
(truncated to keep the corpus small).  Run from the repository root:  python fuzz/rtmp_corpus.py
"""

import asyncio
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyingress.ingest.rtmp.client import RtmpClientConnection  # noqa: E402
from pyingress.ingest.rtmp.connection import ConnectionState, RtmpConnection  # noqa: E402
from pyingress.ingest.rtmp.flv import AudioPacketType, VideoPacketType, ex_audio_tag, ex_video_tag  # noqa: E402
from pyingress.ingest.rtmp.handshake import HANDSHAKE_SIZE  # noqa: E402
from pyingress.ingest.rtmp.messages import MessageType, RtmpMessage  # noqa: E402

CORPUS = ROOT / "tests/ingest/rtmp/corpus"
SESSION_BYTES = 48 * 1024
TAG_BYTES = 2048


class Recording:
    def __init__(self) -> None:
        self.raw = bytearray()
        self.messages: list[RtmpMessage] = []


async def record(argv: list[str]) -> Recording:
    """Run a publisher against a server that accepts any key and keeps every byte and message it receives."""
    recording = Recording()
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = RtmpConnection()
        original = conn._dispatch

        def keep(message: RtmpMessage) -> None:
            recording.messages.append(message)
            original(message)

        conn._dispatch = keep  # type: ignore[method-assign]
        while data := await reader.read(65536):
            recording.raw += data
            conn.receive_data(data)
            list(conn.events())
            if conn.state is ConnectionState.PUBLISH_PENDING:
                conn.accept_publish()
                list(conn.events())
            writer.write(conn.data_to_send())
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        *[arg.replace("PORT", str(port)) for arg in argv],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await process.wait()
    await asyncio.wait_for(done.wait(), 10)
    server.close()
    return recording


def enhanced_session() -> bytes:
    """What our client sends for an E-RTMP HEVC + Opus publish (fake payloads: the framing is what matters)."""
    client = RtmpClientConnection("live", "rtmp://127.0.0.1/live")
    server = RtmpConnection()
    sent = bytearray(client.data_to_send())
    server.receive_data(bytes(sent))
    client.receive_data(server.data_to_send())
    client.start_publish("live/ENHANCED")
    for _ in range(3):
        out = client.data_to_send()
        sent += out
        server.receive_data(out)
        if server.state is ConnectionState.PUBLISH_PENDING:
            server.accept_publish()
        client.receive_data(server.data_to_send())
    client.send_metadata({"width": 320.0, "height": 240.0, "videocodecid": "hvc1"})
    client.send_video(0, ex_video_tag("hevc", VideoPacketType.SEQUENCE_START, bytes.fromhex("01016000") + bytes(20)))
    client.send_audio(0, ex_audio_tag("opus", AudioPacketType.SEQUENCE_START, b"OpusHead\x01\x02\x38\x01" + bytes(7)))
    for i in range(5):
        client.send_video(
            i * 40,
            ex_video_tag(
                "hevc", VideoPacketType.CODED_FRAMES, bytes(60), keyframe=i == 0, composition_time=40, track_id=0
            ),
        )
        client.send_audio(i * 20, ex_audio_tag("opus", AudioPacketType.CODED_FRAMES, bytes(30)))
    sent += client.data_to_send()
    return bytes(sent)


def write(directory: str, name: str, data: bytes) -> None:
    path = CORPUS / directory
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(data)


async def main() -> None:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    ffmpeg = [
        "/usr/bin/ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1",
        "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-bf", "2", "-g", "5", "-c:a", "aac",
        "-f", "flv", "rtmp://127.0.0.1:PORT/live/FFMPEG",
    ]  # fmt: skip
    gstreamer = [
        "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=10", "!", "video/x-raw,width=64,height=48", "!",
        "x264enc", "!", "flvmux", "name=m", "!", "rtmp2sink", "sync=false",
        "location=rtmp://127.0.0.1:PORT/live/GST", "audiotestsrc", "num-buffers=10", "!", "voaacenc", "!", "m.",
    ]  # fmt: skip
    sessions = {"ffmpeg": await record(ffmpeg), "gstreamer": await record(gstreamer)}
    enhanced = enhanced_session()
    for name, recording in sessions.items():
        raw = bytes(recording.raw)
        write("handshake", f"{name}_c0c1c2.bin", raw[: 1 + 2 * HANDSHAKE_SIZE])
        write("connection", f"{name}.bin", raw[:SESSION_BYTES])
        write("chunk", f"{name}.bin", raw[1 + 2 * HANDSHAKE_SIZE : SESSION_BYTES])
        for i, message in enumerate(recording.messages):
            if message.type_id in (MessageType.COMMAND_AMF0, MessageType.DATA_AMF0):
                write("amf0", f"{name}_{i:03d}.bin", message.payload)
        for kind, type_id, flag in (("video", MessageType.VIDEO, 1), ("audio", MessageType.AUDIO, 0)):
            bodies = [m.payload[:TAG_BYTES] for m in recording.messages if m.type_id == type_id][:6]
            # flv target format: a selector byte (odd: video) then length-prefixed bodies (≤255 bytes each)
            write(
                "flv", f"{name}_{kind}.bin", bytes([flag]) + b"".join(bytes([len(b[:255])]) + b[:255] for b in bodies)
            )
    write("handshake", "enhanced_client.bin", enhanced[: 1 + HANDSHAKE_SIZE])
    write("connection", "enhanced_client.bin", enhanced)
    write("chunk", "enhanced_client.bin", enhanced[1 + 2 * HANDSHAKE_SIZE :])
    hevc = [
        ex_video_tag("hevc", VideoPacketType.SEQUENCE_START, bytes(23)),
        ex_video_tag("hevc", VideoPacketType.CODED_FRAMES, bytes(8), keyframe=True, composition_time=40, track_id=0),
        bytes([0x80 | 0x10 | 7, 2, 0, 1, 0, 3]) + b"av01" + bytes(5),
        bytes([0x80 | 0x10 | 6, 0x23]) + b"hvc1" + b"\x00\x00\x00\x02ab\x01\x00\x00\x01c",
    ]
    write("flv", "enhanced_video.bin", b"\x01" + b"".join(bytes([len(b)]) + b for b in hevc))
    print(f"corpus written to {CORPUS}: {sum(1 for _ in CORPUS.rglob('*.bin'))} files")


if __name__ == "__main__":
    asyncio.run(main())
