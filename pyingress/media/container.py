"""A PyAV stream as the data path describes it: what the demuxing doors (URL pull, SRT) hand to their source."""

from fractions import Fraction
from typing import cast

import av
import av.stream
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext

from pyingress.media.packets import StreamDescription


def codec_name(stream: av.stream.Stream) -> str:
    """FFmpeg's name for the stream's codec ("h264", "aac", …), as ``CodecContext.create`` takes it."""
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def describe(stream: av.stream.Stream) -> StreamDescription:
    """Kind, codec, decoder extradata and size or sample format of an audio or video stream."""
    config = bytes(stream.codec_context.extradata) if stream.codec_context.extradata else None
    if stream.type == "video":
        video = cast(VideoCodecContext, stream.codec_context)
        rate = stream.average_rate or stream.guessed_rate
        return StreamDescription(
            kind="video",
            codec=codec_name(stream),
            codec_config=config,
            width=video.width,
            height=video.height,
            frame_rate=float(rate) if rate else 0.0,
        )
    audio = cast(AudioCodecContext, stream.codec_context)
    return StreamDescription(
        kind="audio",
        codec=codec_name(stream),
        codec_config=config,
        sample_rate=audio.sample_rate,
        channels=audio.layout.nb_channels,
    )


def place_in_time(packet: av.Packet, last_dts: dict[int, int]) -> tuple[int, int, Fraction] | None:
    """(pts, dts, time base) of a demuxed packet, or None when it cannot be placed: a missing DTS is the PTS, a
    missing PTS the DTS, both missing the stream's last DTS (``last_dts``, updated here, one entry per stream)."""
    time_base = packet.time_base or packet.stream.time_base
    if time_base is None:
        return None
    index = packet.stream.index
    dts = packet.dts if packet.dts is not None else packet.pts
    if dts is None:
        dts = last_dts.get(index)
        if dts is None:
            return None  # nothing to place it in time by yet
    pts = packet.pts if packet.pts is not None else dts
    last_dts[index] = dts
    return pts, dts, Fraction(time_base)
