"""RTMP/RTMPS front door: sans-IO protocol core (handshake, chunk stream, AMF0, FLV tags, commands) and a thin
asyncio server producing :class:`~pyingress.ingest.source.MediaSource` objects."""

from pyingress.ingest.rtmp.connection import RtmpConnection, stream_key_from_name
from pyingress.ingest.rtmp.errors import RtmpProtocolError, UnsupportedCodecError
from pyingress.ingest.rtmp.server import AdmitCallback, RtmpLimits, RtmpServer

__all__ = [
    "AdmitCallback",
    "RtmpConnection",
    "RtmpLimits",
    "RtmpProtocolError",
    "RtmpServer",
    "UnsupportedCodecError",
    "stream_key_from_name",
]
