"""Short encoded clips for publisher tests, made with PyAV the way the pipeline encodes, and a real-time feeder.

Video: a testsrc-like picture (colour bars, a moving box) per layer size, libx264 constrained baseline in
Annex-B with SPS/PPS repeated before every IDR (what ``OutputFrame`` promises), or libvpx VP8; a short GOP so
a layer switch at the SFU finds a keyframe quickly.  Audio: a different tone per channel in Opus 20 ms frames,
so a receiver that decodes real stereo gets two different channels.
"""

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np

from pyingress.media.packets import OutputFrame

VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, 48_000)
OPUS_FRAME = 960


@dataclass(frozen=True)
class Clip:
    frames: tuple[OutputFrame, ...]  # in media-time order
    duration: float  # seconds; the clip loops seamlessly after this

    def of_quality(self, quality: int) -> list[OutputFrame]:
        return [f for f in self.frames if f.kind == "video" and f.quality == quality]


def _picture(width: int, height: int, index: int) -> np.ndarray:
    bars = np.array(
        [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
        dtype=np.uint8,
    )
    columns = (np.arange(width) * len(bars) // width).clip(0, len(bars) - 1)
    image = np.repeat(bars[columns][np.newaxis, :, :], height, axis=0)
    box = max(8, height // 6)
    x = (index * max(2, width // 60)) % max(1, width - box)
    y = height // 2 - box // 2
    image[y : y + box, x : x + box] = 255
    return image


def _video_context(codec: str, width: int, height: int, fps: int, gop: int, bitrate: int) -> av.VideoCodecContext:
    if codec == "h264":
        context = cast(av.VideoCodecContext, av.CodecContext.create("libx264", "w"))
        context.options = {
            "profile": "baseline",
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:annexb=1",
        }
    elif codec == "vp8":
        context = cast(av.VideoCodecContext, av.CodecContext.create("libvpx", "w"))
        context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "g": str(gop)}
    else:
        raise ValueError(codec)
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, fps)
    context.framerate = Fraction(fps)
    context.bit_rate = bitrate
    context.gop_size = gop
    context.thread_count = 1
    return context


def encode_video(
    codec: str, layers: Sequence[tuple[int, int, int]], seconds: float, fps: int = 30, gop: int = 10
) -> list[OutputFrame]:
    """Frames of every layer (quality, width, height), timestamps in 1/90000 from 0."""
    frames: list[OutputFrame] = []
    count = round(seconds * fps)
    for quality, width, height in layers:
        context = _video_context(codec, width, height, fps, gop, bitrate=max(150_000, width * height * 2))
        packets: list[av.Packet] = []
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(_picture(width, height, index), format="rgb24").reformat(
                format="yuv420p"
            )
            frame.pts = index
            packets += context.encode(frame)
        packets += context.encode(None)
        for packet in packets:
            assert packet.pts is not None
            frames.append(
                OutputFrame(
                    kind="video",
                    codec=codec,
                    data=bytes(packet),
                    pts=packet.pts * 90_000 // fps,
                    time_base=VIDEO_TIME_BASE,
                    keyframe=packet.is_keyframe,
                    quality=quality,
                    width=width,
                    height=height,
                    duration=90_000 // fps,
                )
            )
    return frames


def encode_audio(seconds: float, channels: int = 2, bitrate: int = 96_000) -> list[OutputFrame]:
    """Opus 20 ms frames: 440 Hz on the left (or only) channel, 880 Hz on the right."""
    context = cast(av.AudioCodecContext, av.CodecContext.create("libopus", "w"))
    context.sample_rate = 48_000
    context.layout = "stereo" if channels == 2 else "mono"
    context.format = "s16"
    context.bit_rate = bitrate
    context.time_base = AUDIO_TIME_BASE
    total = round(seconds * 48_000 / OPUS_FRAME) * OPUS_FRAME
    t = np.arange(total) / 48_000
    tones = [np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t)][:channels]
    samples = (np.stack(tones, axis=1) * 12_000).astype(np.int16)  # (n, channels) interleaved
    packets: list[av.Packet] = []
    for start in range(0, total, OPUS_FRAME):
        frame = av.AudioFrame.from_ndarray(
            samples[start : start + OPUS_FRAME].reshape(1, -1), format="s16", layout=context.layout.name
        )
        frame.sample_rate = 48_000
        frame.pts = start
        packets += context.encode(frame)
    packets += context.encode(None)
    return [
        OutputFrame(
            kind="audio",
            codec="opus",
            data=bytes(p),
            pts=i * OPUS_FRAME,
            time_base=AUDIO_TIME_BASE,
            keyframe=True,
            duration=OPUS_FRAME,
        )
        for i, p in enumerate(packets[: total // OPUS_FRAME])
    ]


def make_clip(
    codec: str, layers: Sequence[tuple[int, int, int]], seconds: float = 2.0, audio_channels: int | None = 2
) -> Clip:
    frames = encode_video(codec, layers, seconds)
    if audio_channels:
        frames += encode_audio(seconds, audio_channels)
    frames.sort(key=lambda f: (float(f.pts * f.time_base), f.kind))
    return Clip(tuple(frames), seconds)


async def feed(
    write: Callable[[OutputFrame], None],
    clip: Clip,
    seconds: float,
    *,
    lead: float = 0.05,
) -> int:
    """Write the looping clip in real time (each frame ``lead`` s before it is due) for ``seconds``. Frames."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    written = 0
    repeat = 0
    while True:
        offset = repeat * clip.duration
        for frame in clip.frames:
            media_time = float(frame.pts * frame.time_base) + offset
            if media_time >= seconds:
                return written
            delay = start + media_time - lead - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            shift = round(offset / frame.time_base)
            write(dataclasses.replace(frame, pts=frame.pts + shift))
            written += 1
        repeat += 1
