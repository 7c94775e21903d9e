"""Fuzz targets for the RTMP protocol core, shared by the hypothesis tests (bounded, in CI) and the atheris
entry points ``fuzz/rtmp_<target>.py`` (long runs).  Each target feeds bytes to one sans-IO parser; the only
exception allowed to escape is :class:`RtmpProtocolError`.
"""

import contextlib

from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.chunk import ChunkStream
from pyingress.ingest.rtmp.connection import ConnectionState, RtmpConnection
from pyingress.ingest.rtmp.demux import FlvDemuxer
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.flv import parse_audio_tag, parse_video_tag
from pyingress.ingest.rtmp.handshake import ClientHandshake, ServerHandshake


def _splits(data: bytes, step: int | None) -> list[bytes]:
    """Cut ``data`` into TCP-segment-like pieces (atheris: a size derived from the input's length)."""
    size = step or 1 + len(data) * 31 % 1499
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def handshake(data: bytes, step: int | None = None) -> None:
    server = ServerHandshake(random_bytes=bytes)
    client = ClientHandshake(random_bytes=bytes)
    try:
        for segment in _splits(data, step):
            server.receive_data(segment)
    except RtmpProtocolError:
        pass
    with contextlib.suppress(RtmpProtocolError):
        client.receive_data(data)


def chunk_stream(data: bytes, step: int | None = None) -> None:
    stream = ChunkStream(max_message_size=1 << 20)
    try:
        for segment in _splits(data, step):
            stream.receive_data(segment)
            stream.data_to_send()
    except RtmpProtocolError:
        pass


def amf0_values(data: bytes) -> None:
    for decode in (amf0.decode_values, amf0.decode_amf3_message):
        try:
            values = decode(data)
        except RtmpProtocolError:
            continue
        with contextlib.suppress(ValueError):  # what we decoded we can say again, unless it nests past our limit
            amf0.encode_values(*values)


def flv_tags(data: bytes) -> None:
    """First byte picks audio or video; the rest is a sequence of length-prefixed tag bodies fed to one demuxer."""
    demuxer = FlvDemuxer(config_grace_ms=1000)
    video = bool(data[:1]) and data[0] & 1
    pos, timestamp = 1, 0
    while pos < len(data):
        size = data[pos]
        body = data[pos + 1 : pos + 1 + size]
        pos += 1 + size
        timestamp += 20
        try:
            if video:
                parse_video_tag(body)
                demuxer.video_message(timestamp, body)
            else:
                parse_audio_tag(body)
                demuxer.audio_message(timestamp, body)
        except RtmpProtocolError:
            return


def connection(data: bytes, step: int | None = None) -> None:
    """A whole server connection; publishes are accepted so media parsing is reached."""
    conn = RtmpConnection(max_message_size=1 << 20)
    try:
        for segment in _splits(data, step):
            conn.receive_data(segment)
            for _ in conn.events():
                pass
            if conn.state is ConnectionState.PUBLISH_PENDING:
                conn.accept_publish()
            conn.data_to_send()
    except RtmpProtocolError:
        pass


TARGETS = {
    "handshake": handshake,
    "chunk": chunk_stream,
    "amf0": amf0_values,
    "flv": flv_tags,
    "connection": connection,
}
