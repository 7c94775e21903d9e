"""Opus out: 48 kHz, 20 ms, channels/bitrate/DTX from the options, timestamps following the input."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from av.audio.frame import AudioFrame
from livekit.protocol.ingress import IngressAudioEncodingPreset

from pyingress.media.audio_encode import FRAME_SAMPLES, EncodedAudio, OpusEncoder, opus_options
from pyingress.media.packets import OutputFrame
from pyingress.media.presets import AudioEncoding, audio_preset
from tests.media.media_helpers import decode_audio


def _tone(start: int, samples: int, rate: int = 44100, channels: int = 2) -> AudioFrame:
    t = (np.arange(samples) + start) / rate
    wave = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    frame = AudioFrame.from_ndarray(np.tile(wave, (channels, 1)).T.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = rate
    return frame


def _encode(encoding: AudioEncoding, chunks: list[tuple[int, int]], rate: int = 44100) -> list[EncodedAudio]:
    encoder = OpusEncoder(encoding)
    out = []
    for start, samples in chunks:
        out += encoder.encode(_tone(start, samples, rate), start * 1_000_000 // rate)
    return out + encoder.flush()


def test_presets_give_20_ms_frames_at_48_khz_with_their_channels_and_bitrate() -> None:
    for preset, channels in (
        (IngressAudioEncodingPreset.OPUS_STEREO_96KBPS, 2),
        (IngressAudioEncodingPreset.OPUS_MONO_64KBS, 1),
    ):
        encoding = audio_preset(preset)
        packets = _encode(encoding, [(i * 1024, 1024) for i in range(430)])  # 10 s of 44.1 kHz AAC-sized frames
        assert [p.pts for p in packets[:3]] == [0, 960, 1920]
        assert {p.duration for p in packets} == {FRAME_SAMPLES}
        bitrate = sum(len(p.data) for p in packets) * 8 / (len(packets) * 0.02)
        # Opus is VBR: a pure tone lands around +25 % at 64 kb/s mono (feasibility.md §11 saw 79 kb/s)
        assert bitrate == pytest.approx(encoding.bitrate, rel=0.3)
        frames = [OutputFrame("audio", "opus", p.data, p.pts, Fraction(1, 48000)) for p in packets]
        decoded = decode_audio(frames[:5])
        assert decoded[0].sample_rate == 48000 and decoded[0].samples == 960
        assert {bool(p.data[0] & 0x04) for p in packets[1:]} == {channels == 2}  # the TOC byte's stereo flag


def test_dtx_follows_the_option() -> None:
    assert opus_options(AudioEncoding(1, 2, 96_000, disable_dtx=False))["dtx"] == "1"
    assert opus_options(AudioEncoding(1, 2, 96_000, disable_dtx=True))["dtx"] == "0"


def test_a_gap_in_the_input_leaves_the_same_gap_and_overlaps_are_dropped() -> None:
    encoder = OpusEncoder(audio_preset(0))
    out = encoder.encode(_tone(0, 4800, 48000), 0)  # 100 ms
    out += encoder.encode(_tone(0, 4800, 48000), 500_000)  # resumes at 500 ms: 400 ms gap
    out += encoder.encode(_tone(0, 4800, 48000), 100_000)  # in the past: dropped
    out += encoder.flush()
    pts = [p.pts for p in out]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert any(b - a == 960 + 19200 for a, b in itertools.pairwise(pts))  # +400 ms at 48 kHz
    assert encoder.resyncs == 1 and encoder.dropped_overlap == 1
