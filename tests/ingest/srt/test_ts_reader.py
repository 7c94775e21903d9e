"""MPEG-TS read from a real SRT connection (our binding on both ends) into descriptions and packets."""

import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from pyingress.ingest.srt.libsrt import SrtSocket
from pyingress.ingest.srt.ts_reader import PeerGone, SrtStream, TsError, TsReader, check_ts
from pyingress.media.packets import EncodedPacket
from tests.harness.publishers import TestPattern, make_clip
from tests.ingest.srt.pair import connected_pair, listening

NULL_TS = b"\x47\x1f\xff\x10" + b"\xff" * 184  # a null packet (PID 0x1FFF)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ts") / "clip.ts"
    return make_clip(TestPattern(width=320, height=240, fps=30, duration=6, gop=30), path, fmt="mpegts").read_bytes()


def _send(caller: SrtSocket, data: bytes, close: bool = True) -> threading.Thread:
    def run() -> None:
        for offset in range(0, len(data), 1316):
            caller.send(data[offset : offset + 1316])
        if close:
            # What is still in the receiver's buffer (TSBPD: 120 ms) is lost when a caller closes right away.
            time.sleep(0.5)
            caller.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def pair() -> Iterator[tuple[SrtSocket, SrtSocket]]:
    with listening() as listener:
        caller, accepted = connected_pair(listener)
        yield caller, accepted
        caller.close()
        accepted.close()


def test_check_ts_takes_whole_ts_packets_only() -> None:
    check_ts(NULL_TS * 7)
    check_ts(b"")
    with pytest.raises(TsError, match="not MPEG-TS: SRT messages must be 188-byte TS packets"):
        check_ts(b"FLV\x01" + bytes(1312))
    with pytest.raises(TsError, match="must be 188-byte"):
        check_ts(NULL_TS[:100])
    with pytest.raises(TsError, match="no sync byte at offset 188"):
        check_ts(NULL_TS + b"\x00" * 188)


def test_h264_and_aac_come_out_described_and_timed(clip: bytes, pair: tuple[SrtSocket, SrtSocket]) -> None:
    caller, accepted = pair
    _send(caller, clip)
    reader = TsReader(SrtStream(accepted), "test")
    video, audio = reader.descriptions()
    assert (video.kind, video.codec, video.width, video.height) == ("video", "h264", 320, 240)
    assert video.codec_config is not None and video.codec_config.startswith(b"\x00\x00")  # Annex B SPS/PPS
    assert video.frame_rate == 30
    assert (audio.kind, audio.codec, audio.sample_rate, audio.channels) == ("audio", "aac", 48_000, 2)
    packets: list[EncodedPacket] = []
    with pytest.raises(PeerGone):
        packets.extend(reader.packets_in_order())
    reader.close()
    frames = [p for p in packets if p.kind == "video"]
    assert len(frames) >= 150 and frames[0].keyframe and sum(p.keyframe for p in frames) >= 2
    assert all(p.time_base == Fraction(1, 90000) for p in packets)
    assert [p.dts for p in frames] == sorted(p.dts for p in frames)
    assert len([p for p in packets if p.kind == "audio"]) >= 200


def test_a_read_never_returns_more_than_asked(pair: tuple[SrtSocket, SrtSocket], tmp_path: Path) -> None:
    """PyAV copies what ``read`` returns into its buffer of ``size`` bytes unchecked: a picture held whole to its
    last packet (30-60 kB keyframes here) must come out in pieces, every byte once."""
    big = make_clip(
        TestPattern(width=1280, height=720, fps=30, duration=2, gop=30, video_bitrate="8M"), tmp_path / "b.ts", "mpegts"
    ).read_bytes()
    caller, accepted = pair
    _send(caller, big)
    stream = SrtStream(accepted)
    pieces = []
    with pytest.raises(PeerGone):
        while piece := stream.read(4096):
            pieces.append(piece)
        stream.read(4096)  # end of file again (PyAV asks twice), then the reader raises the failure
        raise stream.failure or AssertionError("no failure kept")
    assert max(map(len, pieces)) == 4096  # some held pictures were larger than a read
    assert sum(map(len, pieces)) == len(big) and stream.pes_ends.stats.ended >= 50


def test_a_payload_that_is_not_ts_is_refused_in_words(pair: tuple[SrtSocket, SrtSocket]) -> None:
    caller, accepted = pair
    _send(caller, b"FLV\x01\x05" + bytes(5000), close=False)
    with pytest.raises(TsError, match="not MPEG-TS"):
        TsReader(SrtStream(accepted), "test")


def test_a_ts_without_audio_or_video_is_refused_in_words(pair: tuple[SrtSocket, SrtSocket]) -> None:
    caller, accepted = pair
    _send(caller, NULL_TS * 7 * 6200, close=False)  # > the 8 MB read without a media packet
    with pytest.raises(TsError, match="holds no audio or video: 8 MB without a media packet"):
        TsReader(SrtStream(accepted), "test")


def test_an_unsupported_codec_is_named(pair: tuple[SrtSocket, SrtSocket], tmp_path: Path) -> None:
    caller, accepted = pair
    pattern = TestPattern(width=320, height=240, duration=1, video_codec="mpeg2video", audio_codec="")
    _send(caller, make_clip(pattern, tmp_path / "mpeg2.ts", fmt="mpegts").read_bytes(), close=False)
    with pytest.raises(TsError, match="unsupported video codec mpeg2video"):
        TsReader(SrtStream(accepted), "test")


def test_a_publisher_gone_before_any_media_is_a_disconnect(pair: tuple[SrtSocket, SrtSocket]) -> None:
    caller, accepted = pair
    caller.close()
    with pytest.raises(PeerGone):
        TsReader(SrtStream(accepted), "test")
