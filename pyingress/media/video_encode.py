"""One simulcast layer's scaler and encoder: H.264 constrained baseline (libx264) or VP8 (libvpx).

Settings are LiveKit's (ingress.md §1.7, feasibility.md §2–§4), expressed as FFmpeg options so that the benchmark
hands the *same* dictionaries to the ffmpeg CLI:

- x264: ``veryfast`` + ``zerolatency``, baseline profile (no B-frames, no CABAC), CBR with a 1 s VBV
  (maxrate = bufsize = bitrate), Annex-B with SPS/PPS repeated before every IDR, an IDR at least every GOP and
  immediately on request (``forced-idr``: a forced keyframe is an IDR, never an open-GOP I-frame).
- libvpx VP8: realtime deadline, ``cpu-used -6`` (LiveKit's value, and the cheapest measured, §4), CBR with
  LiveKit's 500/600/1000 ms buffer, no lag.
- ``thread_count=1`` everywhere: the transcoder encodes layers in turn on its decode thread, or on a thread per
  layer for ladders above ``transcoder.SEQUENTIAL_PIXEL_RATE_LIMIT`` (PyAV releases the GIL in sws_scale and the
  encoders); libvpx's own threads under oversubscription cost 2.8× the CPU (§4).
- one ``VideoReformatter`` per layer, reused for every frame (``frame.reformat`` rebuilds it each time, +8 % CPU).
"""

from fractions import Fraction
from typing import cast

import av
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from pyingress.media.layer_plan import PlannedLayer

VIDEO_TIME_BASE = Fraction(1, 90_000)
_ENCODERS = {"h264": "libx264", "vp8": "libvpx"}


def x264_options(bitrate: int, gop: int) -> dict[str, str]:
    return {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        "bf": "0",
        "g": str(gop),
        "b": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),  # 1 s of VBV, like x264enc vbv-buf-capacity=1000
        "forced-idr": "1",
        "x264-params": "repeat-headers=1",
    }


def vp8_options(bitrate: int, gop: int) -> dict[str, str]:
    return {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "static-thresh": "0",
        "undershoot-pct": "95",
        "g": str(gop),
        "b": str(bitrate),
        "minrate": str(bitrate),  # minrate = maxrate = bitrate selects libvpx CBR
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),  # 1000 ms buffer
        "rc_init_occupancy": str(bitrate // 2),  # 500 ms initial
    }


def encoder_options(codec: str, bitrate: int, gop: int) -> dict[str, str]:
    return x264_options(bitrate, gop) if codec == "h264" else vp8_options(bitrate, gop)


def encoder_name(codec: str) -> str:
    return _ENCODERS[codec]


def _interpolation(width: int, height: int, to_width: int, to_height: int) -> Interpolation:
    """Halving exactly (the ladders' usual step, and LOW from MEDIUM): an area average, the ideal 2:1 decimator,
    at 2/3 of bilinear's cost here (366 against 566 µs for 1280×720 → 640×360); any other ratio: bilinear."""
    if width == 2 * to_width and height == 2 * to_height:
        return Interpolation.AREA
    return Interpolation.BILINEAR


class LayerEncoder:
    """Scales decoded frames to the layer's size and encodes them; keyframes on request."""

    def __init__(self, codec: str, layer: PlannedLayer, frame_rate: float, gop: int) -> None:
        if codec not in _ENCODERS:
            raise ValueError(f"no encoder for {codec!r}")
        self.codec = codec
        self.layer = layer
        self._scaler = VideoReformatter()
        context = cast(VideoCodecContext, CodecContext.create(_ENCODERS[codec], "w"))
        context.width = layer.width
        context.height = layer.height
        context.pix_fmt = "yuv420p"
        context.time_base = VIDEO_TIME_BASE
        context.framerate = Fraction(frame_rate).limit_denominator(1001)
        context.thread_count = 1
        context.options = encoder_options(codec, layer.bitrate, gop)
        context.open()
        self._context = context

    def scale(self, frame: VideoFrame, colorspace: int) -> VideoFrame:
        # Explicit colour tags: PyAV's reformat reads and restores them on the *shared* source frame, which
        # races when several layer threads scale the same frame (feasibility.md §11); constants do not.
        return self._scaler.reformat(
            frame,
            self.layer.width,
            self.layer.height,
            "yuv420p",
            src_colorspace=colorspace,
            dst_colorspace=colorspace,
            interpolation=_interpolation(frame.width, frame.height, self.layer.width, self.layer.height),
            threads=1,
        )

    def encode(self, frame: VideoFrame, pts: int, keyframe: bool) -> list[av.Packet]:
        """Encode one frame at ``pts`` (90 kHz); the same source frame object may be in other layers' hands."""
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        return self._context.encode(frame)

    def flush(self) -> list[av.Packet]:
        try:
            return self._context.encode(None)
        except av.error.EOFError:
            return []

    def close(self) -> None:
        self._context = None  # type: ignore[assignment]  # freed with its last reference
