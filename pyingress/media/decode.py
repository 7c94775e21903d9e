"""Decoders for whatever the front doors deliver (H.264, HEVC, AV1, VP8, VP9, AAC, MP3, Opus, … anything PyAV has).

Settings are the measured ones (feasibility.md §4, §6): ``thread_type=SLICE``, ``thread_count=1``.  Frame threading
would buy throughput we do not need (a session's ladder fits one core up to 1080p30, and sessions run side by
side in their own worker processes) at about +65 ms of latency.

Packets reach the decoder with timestamps in microseconds (the session timeline's unit), so decoded frames carry
microsecond PTS in presentation order: source B-frames are reordered here and never travel further.

A decoder failing once is a damaged packet; failing ``error_limit`` packets in a row is a broken stream and ends
the session with a message that says which decoder and why.
"""

import logging
from fractions import Fraction
from typing import ClassVar, cast

import av
import av.filter
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.format import VideoFormat
from av.video.frame import VideoFrame

from pyingress.media.config import PipelineError
from pyingress.media.packets import StreamDescription

log = logging.getLogger(__name__)

MICROSECOND = Fraction(1, 1_000_000)

# FFmpeg names for codecs whose preferred decoder differs from the codec id's default.
_DECODER_NAMES = {"av1": "libdav1d"}


def decoder_name(codec: str) -> str:
    name = _DECODER_NAMES.get(codec, codec)
    return name if name in av.codecs_available else codec


class StreamDecoder:
    """One elementary stream: packets in, frames out; reopened when the publisher changes the codec config."""

    def __init__(self, desc: StreamDescription, error_limit: int = 25) -> None:
        self.desc = desc
        self.error_limit = error_limit
        self.consecutive_errors = 0
        self.errors = 0
        self._config = desc.codec_config
        try:
            self._context = self._open(desc.codec_config)
        except (av.error.FFmpegError, ValueError) as error:
            raise PipelineError(f"unsupported {desc.kind} codec {desc.codec!r}: {error}") from None

    def _open(self, config: bytes | None) -> VideoCodecContext | AudioCodecContext:
        context = cast(VideoCodecContext | AudioCodecContext, CodecContext.create(decoder_name(self.desc.codec), "r"))
        context.thread_type = "SLICE"
        context.thread_count = 1
        if config:
            context.extradata = config
        if isinstance(context, AudioCodecContext):
            if self.desc.sample_rate:
                context.sample_rate = self.desc.sample_rate
            if self.desc.channels in (1, 2):
                context.layout = "mono" if self.desc.channels == 1 else "stereo"
        return context

    def decode(
        self, data: bytes, pts_us: int, dts_us: int, codec_config: bytes | None = None
    ) -> list[VideoFrame | AudioFrame]:
        frames: list[VideoFrame | AudioFrame] = []
        if codec_config and codec_config != self._config:
            # A new sequence header (resolution switch, new encoder): drain the old decoder, start a fresh one.
            frames.extend(self._drain())
            self._config = codec_config
            self._context = self._open(codec_config)
        packet = av.Packet(data)
        packet.pts = pts_us
        packet.dts = dts_us
        packet.time_base = MICROSECOND
        try:
            frames.extend(self._context.decode(packet))
        except av.error.FFmpegError as error:
            self.errors += 1
            self.consecutive_errors += 1
            if self.consecutive_errors >= self.error_limit:
                raise PipelineError(
                    f"{self.desc.kind} decoder ({self.desc.codec}) failed: {error.strerror}"
                    f" ({self.consecutive_errors} packets in a row)"
                ) from None
            return frames
        self.consecutive_errors = 0
        return frames

    def _drain(self) -> list[VideoFrame | AudioFrame]:
        try:
            return list(self._context.decode(None))
        except av.error.FFmpegError:
            return []

    def flush(self) -> list[VideoFrame | AudioFrame]:
        return self._drain()

    def close(self) -> None:
        # PyAV frees a codec context when the last reference goes; drop ours now rather than at GC time.
        self._context = None  # type: ignore[assignment]


class FrameOrienter:
    """Turns decoded pictures upright when their display matrix says so (phones record sideways + a rotation).

    ``VideoFrame.rotation`` is FFmpeg's counter-clockwise display rotation; turning the picture counter-clockwise
    by it gives what a player shows.  H.264/HEVC carry it in a display-orientation SEI that is sent once and
    persists, while FFmpeg attaches the matrix only to the frame that carried it: so the last rotation seen stays
    in force until another one arrives or the stream is reconfigured (``reset``).  The filter graph exists only
    while a rotation is in force.
    """

    _FILTERS: ClassVar[dict[int, tuple[str, str]]] = {90: ("transpose", "cclock"), 270: ("transpose", "clock")}

    def __init__(self) -> None:
        self.rotation = 0
        self._graph: av.filter.Graph | None = None
        self._key: tuple[int, int, str, int] | None = None

    def reset(self) -> None:
        self.rotation = 0

    def _update(self, frame: VideoFrame) -> None:
        # ``frame.rotation`` reads the matrix in C.  Not ``frame.side_data``: that container and the frame refer to
        # each other, so every frame touched would wait for the cycle collector (measured: +250 MB at 1080p).
        # A matrix saying 0° reads like none, so a rotation ends only with a reconfiguration (``reset``).
        rotation = round(frame.rotation / 90) * 90 % 360
        if rotation:
            self.rotation = rotation

    def orient(self, frame: VideoFrame) -> VideoFrame:
        self._update(frame)
        if self.rotation == 0:
            return frame
        key = (frame.width, frame.height, frame.format.name, self.rotation)
        if key != self._key or self._graph is None:
            self._graph = self._build(key)
            self._key = key
        self._graph.push(frame)
        upright = self._graph.pull()
        assert isinstance(upright, VideoFrame)
        upright.pts = frame.pts
        return upright

    def _build(self, key: tuple[int, int, str, int]) -> av.filter.Graph:
        width, height, pixel_format, rotation = key
        graph = av.filter.Graph()
        last = graph.add_buffer(width=width, height=height, format=VideoFormat(pixel_format), time_base=MICROSECOND)
        steps = [self._FILTERS[rotation]] if rotation in self._FILTERS else [("hflip", ""), ("vflip", "")]
        for name, args in steps:
            node = graph.add(name, args) if args else graph.add(name)
            last.link_to(node)
            last = node
        sink = graph.add("buffersink")
        last.link_to(sink)
        graph.configure()
        return graph
