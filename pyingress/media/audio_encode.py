"""The audio track: any decoded audio → 48 kHz s16 → Opus in 20 ms frames (ingress.md §2.2: channels, bitrate, DTX).

Output timestamps are the input's, at 48 kHz: each 960-sample frame is stamped from a running sample count that
is re-anchored when the input has a gap (so A/V sync follows the source) and that drops input overlapping what was
already encoded (so timestamps never go back).
"""

import contextlib
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.codec.context import CodecContext

from pyingress.media.presets import OPUS_FRAME_MS, OPUS_SAMPLE_RATE, AudioEncoding

AUDIO_TIME_BASE = Fraction(1, OPUS_SAMPLE_RATE)
FRAME_SAMPLES = OPUS_SAMPLE_RATE * OPUS_FRAME_MS // 1000  # 960
_RESYNC_SAMPLES = 2 * FRAME_SAMPLES  # 40 ms: drift smaller than this is left to the sample count


def opus_options(encoding: AudioEncoding) -> dict[str, str]:
    return {
        "frame_duration": str(OPUS_FRAME_MS),
        "dtx": "0" if encoding.disable_dtx else "1",
        "application": "audio",
    }


@dataclass(frozen=True)
class EncodedAudio:
    data: bytes
    pts: int  # 48 kHz
    duration: int


class OpusEncoder:
    def __init__(self, encoding: AudioEncoding) -> None:
        self.encoding = encoding
        layout = "mono" if encoding.channels == 1 else "stereo"
        self._resampler = AudioResampler(format="s16", layout=layout, rate=OPUS_SAMPLE_RATE, frame_size=FRAME_SAMPLES)
        context = CodecContext.create("libopus", "w")
        context.sample_rate = OPUS_SAMPLE_RATE
        context.layout = layout
        context.format = "s16"
        context.bit_rate = encoding.bitrate
        context.time_base = AUDIO_TIME_BASE
        context.thread_count = 1
        context.options = opus_options(encoding)
        context.open()
        self._context = context
        self._next_in: int | None = None  # where the next input frame should start, 48 kHz
        self._next_out = 0  # pts of the next 960-sample frame out of the resampler
        self._pending: deque[int] = deque()  # pts of frames inside the encoder, in order
        self.dropped_overlap = 0
        self.resyncs = 0

    def encode(self, frame: AudioFrame, pts_us: int) -> list[EncodedAudio]:
        start = pts_us * OPUS_SAMPLE_RATE // 1_000_000
        length = frame.samples * OPUS_SAMPLE_RATE // (frame.sample_rate or OPUS_SAMPLE_RATE)
        if self._next_in is None:
            self._next_in = start
            self._next_out = start
        drift = start - self._next_in
        if drift < -_RESYNC_SAMPLES:
            self.dropped_overlap += 1  # this audio lies in the past of what we sent
            return []
        if drift > _RESYNC_SAMPLES:
            self.resyncs += 1  # a gap in the input: leave the same gap in the output timestamps
            self._next_out += drift
        self._next_in = start + length
        frame.pts = None
        out: list[EncodedAudio] = []
        for resampled in self._resampler.resample(frame):
            out.extend(self._encode_resampled(resampled))
        return out

    def _encode_resampled(self, resampled: AudioFrame) -> list[EncodedAudio]:
        resampled.pts = self._next_out
        resampled.time_base = AUDIO_TIME_BASE
        self._pending.append(self._next_out)
        self._next_out += resampled.samples
        return self._collect(self._context.encode(resampled))

    def _collect(self, packets: list[av.Packet]) -> list[EncodedAudio]:
        out = []
        for packet in packets:
            # libopus stamps packets 312 samples early (its pre-skip); ours are the input frame's own pts.
            pts = self._pending.popleft() if self._pending else self._next_out
            out.append(EncodedAudio(bytes(packet), pts, FRAME_SAMPLES))
        return out

    def flush(self) -> list[EncodedAudio]:
        out: list[EncodedAudio] = []
        for resampled in self._resampler.resample(None):
            out.extend(self._encode_resampled(resampled))
        with contextlib.suppress(av.error.EOFError):
            out.extend(self._collect(self._context.encode(None)))
        return out

    def close(self) -> None:
        self._context = None  # type: ignore[assignment]  # freed with its last reference
