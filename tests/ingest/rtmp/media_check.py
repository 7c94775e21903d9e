"""What a viewer would check about received media: decode it with PyAV and measure frames, sizes and timing."""

import asyncio
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from pyingress.ingest.source import EndReason, MediaSource
from pyingress.media.packets import EncodedPacket, StreamDescription


@dataclass
class Received:
    descriptions: dict[str, StreamDescription] = field(default_factory=dict)
    packets: dict[str, list[EncodedPacket]] = field(default_factory=lambda: {"audio": [], "video": []})
    metadata: dict[str, Any] = field(default_factory=dict)
    end_reason: EndReason | None = None
    error: str | None = None


async def collect(source: MediaSource, timeout: float = 30.0) -> Received:
    received = Received()
    async with asyncio.timeout(timeout):
        async for item in source:
            if isinstance(item, StreamDescription):
                received.descriptions[item.kind] = item
            else:
                received.packets[item.kind].append(item)
    received.metadata = source.metadata
    received.end_reason, received.error = source.end_reason, source.error
    return received


@dataclass(frozen=True)
class DecodedVideo:
    pts: list[int]  # ms, in output order
    sizes: set[tuple[int, int]]


@dataclass(frozen=True)
class DecodedAudio:
    frame_pts: list[int]  # ms
    samples: int
    sample_rate: int
    channels: int

    @property
    def end_ms(self) -> float:
        return self.frame_pts[0] + 1000 * self.samples / self.sample_rate


def _decoder(description: StreamDescription, codec: str | None = None) -> av.CodecContext:
    context = av.CodecContext.create(codec or description.codec, "r")
    if description.codec_config:
        context.extradata = description.codec_config
    context.thread_count = 1
    return context


def _packets(packets: list[EncodedPacket]) -> list[av.Packet | None]:
    out: list[av.Packet | None] = []
    for source in packets:
        packet = av.Packet(source.data)
        packet.pts, packet.dts, packet.time_base = source.pts, source.dts, Fraction(1, 1000)
        out.append(packet)
    return [*out, None]


def decode_video(received: Received, codec: str | None = None) -> DecodedVideo:
    description = received.descriptions["video"]
    context = _decoder(description, codec)
    pts: list[int] = []
    sizes: set[tuple[int, int]] = set()
    for packet in _packets(received.packets["video"]):
        for frame in context.decode(packet):  # type: ignore[attr-defined]
            pts.append(int(frame.pts))
            sizes.add((frame.width, frame.height))
    return DecodedVideo(pts, sizes)


def decode_audio(received: Received) -> DecodedAudio:
    description = received.descriptions["audio"]
    context = _decoder(description)
    frame_pts: list[int] = []
    samples = rate = channels = 0
    for packet in _packets(received.packets["audio"]):
        for frame in context.decode(packet):  # type: ignore[attr-defined]
            frame_pts.append(int(frame.pts))
            samples += frame.samples
            rate, channels = frame.sample_rate, len(frame.layout.channels)
    return DecodedAudio(frame_pts, samples, rate, channels)


def assert_monotonic(received: Received) -> None:
    for kind, packets in received.packets.items():
        dts = [p.dts for p in packets]
        assert dts == sorted(dts), f"{kind} dts go backwards"
