"""Test publishers built on our sans-IO client: a socket driver, and clips encoded by PyAV for E-RTMP pushes."""

import asyncio
import contextlib
import io
import os
import ssl
from dataclasses import dataclass
from typing import cast

import av
import numpy as np

from pyingress.ingest.rtmp.client import ClientConnected, RtmpClientConnection, StatusReceived

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at info level otherwise


class AsyncPublisher:
    """An encoder on a real TCP (or TLS) socket, speaking through :class:`RtmpClientConnection`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: RtmpClientConnection):
        self.reader = reader
        self.writer = writer
        self.client = client
        self.statuses: list[StatusReceived] = []
        self.connected = False
        self.eof = False

    @classmethod
    async def open(
        cls, port: int, *, tls: bool = False, app: str = "live", digest: bool = True, auto_connect: bool = True
    ) -> "AsyncPublisher":
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        scheme = "rtmps" if tls else "rtmp"
        client = RtmpClientConnection(
            app, f"{scheme}://127.0.0.1:{port}/{app}", digest=digest, auto_connect=auto_connect
        )
        return cls(reader, writer, client)

    async def flush(self) -> None:
        data = self.client.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def read_once(self, timeout: float) -> bool:
        """Read and process what the server sent; False on EOF."""
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            self.eof = True
            return False
        self.client.receive_data(data)
        for event in self.client.events():
            if isinstance(event, StatusReceived):
                self.statuses.append(event)
            elif isinstance(event, ClientConnected):
                self.connected = True
        await self.flush()
        return True

    async def handshake(self, timeout: float = 5.0) -> None:
        await self.flush()
        async with asyncio.timeout(timeout):
            while not self.client.handshake.complete:
                if not await self.read_once(timeout):
                    raise ConnectionError("server closed during the handshake")

    async def connect(self, timeout: float = 5.0) -> None:
        if not self.client.handshake.complete:
            await self.handshake(timeout)
        if not self.client.connect_sent:
            self.client.connect()
        await self.flush()
        async with asyncio.timeout(timeout):
            while not self.connected:
                if not await self.read_once(timeout):
                    raise ConnectionError("server closed before connect completed")

    async def publish(self, name: str, timeout: float = 5.0) -> StatusReceived:
        """Start publishing; returns the server's first status (Publish.Start or an error)."""
        await self.connect(timeout)
        self.client.start_publish(name)
        await self.flush()
        async with asyncio.timeout(timeout):
            while not self.statuses:
                if not await self.read_once(timeout):
                    raise ConnectionError("server closed without a status")
        return self.statuses[0]

    async def wait_closed(self, timeout: float = 5.0) -> list[StatusReceived]:
        """Read until the server hangs up; returns every status seen.  Raises TimeoutError if it never does."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionError):
                while await self.read_once(timeout):
                    pass
        return self.statuses

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@dataclass(frozen=True)
class EncodedClip:
    codec: str  # FFmpeg name of the coded format
    config: bytes | None  # avcC / hvcC / av1C as an MP4 muxer writes it
    packets: list[tuple[int, int, bool, bytes]]  # (dts ms, pts ms, keyframe, data); dts shifted to start at 0
    width: int
    height: int


def encode_clip(
    encoder: str,
    *,
    frames: int = 50,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    options: dict[str, str] | None = None,
) -> EncodedClip:
    """Encode a moving pattern with PyAV into MP4 in memory and read it back: MP4 gives us the codec
    configuration records and length-prefixed NAL units (or AV1 OBUs) that Enhanced RTMP carries."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = cast(av.VideoStream, output.add_stream(encoder, rate=fps, options=options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[:, : (i * 7) % width] = (200, 50, 20)
            image[(i * 3) % height :, :, 1] = 128
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as source:
        video = source.streams.video[0]
        config = video.codec_context.extradata
        time_base = video.time_base
        assert time_base is not None
        raw = [
            (int(p.dts * time_base * 1000), int(p.pts * time_base * 1000), p.is_keyframe, bytes(p))
            for p in source.demux(video)
            if p.size and p.dts is not None and p.pts is not None
        ]
        codec = video.codec_context.codec.name
    shift = -min(dts for dts, _, _, _ in raw)
    packets = [(dts + shift, pts + shift, key, data) for dts, pts, key, data in raw]
    names = {"libdav1d": "av1", "libx265": "hevc", "libx264": "h264"}
    return EncodedClip(names.get(codec, codec), config, packets, width, height)
