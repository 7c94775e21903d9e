"""The video PES end finder: on FFmpeg's own MPEG-TS through FFmpeg's own demuxer, and on hand-made packets for the
cases a real muxer rarely produces (an exact fit, a long keyframe, stuffing mid-PES, a lost packet)."""

import av
import pytest

from pyingress.ingest.srt.pes_end import TS_PACKET, PesEnds
from tests.harness.publishers import TestPattern, make_clip

MESSAGE = 1316  # an SRT live message: 7 TS packets, as FFmpeg and encoders send them
VIDEO, AUDIO = 0x100, 0x101


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """FFmpeg's default muxing: video PES headers without a length, audio PESs of several AAC frames."""
    path = tmp_path_factory.mktemp("ts") / "clip.ts"
    return make_clip(TestPattern(width=320, height=240, fps=30, duration=4, gop=30), path, fmt="mpegts").read_bytes()


def _messages(data: bytes) -> list[bytes]:
    return [data[at : at + MESSAGE] for at in range(0, len(data), MESSAGE)]


def _packets(data: bytes) -> list[bytes]:
    return [data[at : at + TS_PACKET] for at in range(0, len(data), TS_PACKET)]


def _pid(packet: bytes) -> int:
    return (packet[1] & 0x1F) << 8 | packet[2]


def _demuxed(data: bytes) -> dict[str, list[tuple[int | None, bytes]]]:
    """Each stream's packets in order (audio may now come out ahead of a picture that was still arriving)."""
    streams: dict[str, list[tuple[int | None, bytes]]] = {}
    with av.open(_Messages(_messages(data)), mode="r", format="mpegts") as container:
        for packet in container.demux():
            if packet.size:
                streams.setdefault(packet.stream.type, []).append((packet.pts, bytes(packet)))
    return streams


class _Messages:
    """A file PyAV reads one message at a time, counting the reads (as SrtStream hands it SRT messages)."""

    def __init__(self, messages: list[bytes], ends: PesEnds | None = None) -> None:
        self.messages = iter(messages)
        self.ends = ends
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        for message in self.messages:
            self.reads += 1
            data = self.ends.feed(message) if self.ends is not None else message
            if data:
                return data
        return self.ends.flush() if self.ends is not None else b""


def test_ffmpeg_ts_comes_out_whole_with_each_picture_ended(clip: bytes) -> None:
    ends = PesEnds()
    out = b"".join(ends.feed(message) for message in _messages(clip)) + ends.flush()
    assert len(out) == len(clip)
    for pid in {_pid(p) for p in _packets(clip)}:
        before = [p for p in _packets(clip) if _pid(p) == pid]
        after = [p for p in _packets(out) if _pid(p) == pid]
        assert len(before) == len(after)
    # 120 pictures of 320×240: every PES ends inside a packet but for the rare exact fit.
    assert ends.stats.ended >= 110
    assert ends.stats.misjudged == 0
    assert _demuxed(out) == _demuxed(clip)  # FFmpeg reads the same packets, byte for byte


def _live_messages(data: bytes) -> list[bytes]:
    """Messages as a live muxer sends them: up to 7 packets, and a PES written out before the next one starts."""
    messages: list[list[bytes]] = [[]]
    for packet in _packets(data):
        if len(messages[-1]) == 7 or (packet[1] & 0x40 and messages[-1]):
            messages.append([])
        messages[-1].append(packet)
    return [b"".join(message) for message in messages]


def _reads_when_yielded(data: bytes, ends: PesEnds | None) -> list[int]:
    """For each picture FFmpeg's demuxer yields, how many messages it had read by then (after its probing)."""
    source = _Messages(_live_messages(data), ends)
    with av.open(source, mode="r", format="mpegts") as container:
        probed = source.reads
        return [source.reads for p in container.demux(video=0) if p.size and source.reads > probed]


def test_ffmpeg_demuxer_yields_each_picture_a_frame_sooner(clip: bytes) -> None:
    """Without lengths the demuxer needs the next picture's first packet; with them, the picture's own last one,
    which a live encoder sends a frame interval earlier."""
    as_muxed = _reads_when_yielded(clip, None)
    ended = _reads_when_yielded(clip, PesEnds())
    assert len(ended) >= len(as_muxed) >= 60
    sooner = [a - b for a, b in zip(as_muxed[-60:], ended[-60:], strict=True)]
    assert min(sooner) >= 0  # never later
    assert sum(1 for s in sooner if s > 0) >= 55  # and sooner for (nearly) every picture: all but exact fits


# -- hand-made packets ----------------------------------------------------------------------------------------------


def _ts(pid: int, payload: bytes, cc: int, start: bool = False, pcr: bool = False) -> bytes:
    """One TS packet; short payloads are padded with adaptation-field stuffing, as a muxer must."""
    fields = b"\x10" + bytes(6) if pcr else b""
    room = 184 - len(payload)
    if room == 0 and not fields:
        control, adaptation = 0x10, b""
    else:
        assert room >= 1 + len(fields)
        stuffing = room - 1 - len(fields)
        if fields:
            adaptation = bytes([room - 1]) + fields + b"\xff" * stuffing
        else:
            adaptation = bytes([room - 1]) + (b"\x00" + b"\xff" * (stuffing - 1) if stuffing else b"")
        control = 0x30
    return bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, control | cc % 16]) + adaptation + payload


def _pes(pid: int, size: int, first_cc: int = 0, stream_id: int = 0xE0, length: int = 0, **kw: bool) -> list[bytes]:
    """A PES of ``size`` bytes (header included) cut into TS packets."""
    data = b"\x00\x00\x01" + bytes([stream_id]) + length.to_bytes(2, "big") + b"\x80\x00\x00" + bytes(size - 9)
    chunks = [data[at : at + 184] for at in range(0, len(data), 184)]
    return [_ts(pid, chunk, first_cc + i, start=i == 0, **kw) for i, chunk in enumerate(chunks)]


def _feed(ends: PesEnds, packets: list[bytes]) -> list[bytes]:
    return _packets(ends.feed(b"".join(packets)))


def _length(packet: bytes) -> int:
    at = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    return int.from_bytes(packet[at + 4 : at + 6], "big")


def test_a_picture_is_held_to_its_stuffed_last_packet_and_given_its_length() -> None:
    ends = PesEnds()
    picture = _pes(VIDEO, 1000)  # 184 × 5 + 80: the sixth packet is stuffed
    audio = _pes(AUDIO, 300, stream_id=0xC0, length=294)
    assert _feed(ends, picture[:3] + audio) == audio  # audio passes, the picture waits
    out = _feed(ends, picture[3:])
    assert len(out) == 6 and _length(out[0]) == 1000 - 6
    assert out[1:] == picture[1:]
    assert ends.stats.ended == 1


def test_an_exact_fit_ends_at_the_next_start_and_a_long_keyframe_is_not_held() -> None:
    ends = PesEnds()
    exact = _pes(VIDEO, 184 * 3)  # no stuffing: its end shows only when the next PES starts
    assert _feed(ends, exact) == []
    following = _pes(VIDEO, 400, first_cc=3)
    out = _feed(ends, following[:1])
    assert _length(out[0]) == 184 * 3 - 6 and out[1:] == exact[1:]
    keyframe = _pes(VIDEO, 70_000, first_cc=4)  # more than a PES length can say
    out = _feed(ends, following[1:] + keyframe)
    assert _length(out[0]) == 400 - 6
    assert out[len(following) :] == keyframe[: len(out) - len(following)]
    assert len(out) == len(following) + len(keyframe)  # passed on as soon as it outgrew the field, as it came
    assert ends.stats.ended == 2 and ends.stats.passed == 1


def test_pcr_alone_is_not_an_end_but_stuffing_after_it_is() -> None:
    ends = PesEnds()
    picture = _pes(VIDEO, 600)
    picture[1] = _ts(VIDEO, picture[1][4 + 8 :], 1, pcr=True)  # a PCR mid-PES: adaptation field, no stuffing
    assert picture[1][4] == 7  # exactly the PCR's fields
    held = _feed(ends, picture[:-1])
    assert held == [] and ends.stats.ended == 0
    out = _feed(ends, picture[-1:])
    assert len(out) == len(picture) and ends.stats.ended == 1


def test_payload_after_a_packet_judged_last_stops_judging_that_pid() -> None:
    ends = PesEnds()
    first = _pes(VIDEO, 100)  # one stuffed packet: judged the end
    go_on = _ts(VIDEO, bytes(184), 1)  # … but the PES goes on: this muxer stuffs mid-PES
    assert len(_feed(ends, [*first, go_on])) == 2
    assert ends.stats.misjudged == 1
    later = _pes(VIDEO, 1000, first_cc=2)
    assert _feed(ends, later) == later  # no longer held or changed


def test_a_continuity_gap_or_an_errored_packet_passes_the_pes_as_it_came() -> None:
    ends = PesEnds()
    picture = _pes(VIDEO, 1000)
    gap = picture[:2] + picture[3:]
    assert _feed(ends, gap) == gap and ends.stats.passed == 1
    errored = _pes(VIDEO, 1000, first_cc=6)
    errored[2] = bytes([errored[2][0], errored[2][1] | 0x80]) + errored[2][2:]
    assert _feed(ends, errored) == errored


def test_lengths_already_written_and_audio_are_left_alone() -> None:
    ends = PesEnds()
    with_length = _pes(VIDEO, 1000, length=994)
    audio = _pes(AUDIO, 1000, stream_id=0xC0)
    assert _feed(ends, with_length + audio) == with_length + audio
    assert ends.stats.ended == ends.stats.passed == 0


def test_unaligned_data_turns_it_off_without_losing_a_byte() -> None:
    ends = PesEnds()
    picture = _pes(VIDEO, 1000)
    assert _feed(ends, picture[:2]) == []
    assert ends.feed(b"\x00junk") == b"".join(picture[:2]) + b"\x00junk"
    rest = b"".join(picture[2:])
    assert ends.feed(rest) == rest


def test_flush_gives_back_what_is_held() -> None:
    ends = PesEnds()
    picture = _pes(VIDEO, 1000)
    assert _feed(ends, picture[:4]) == []
    assert ends.flush() == b"".join(picture[:4])
    assert ends.flush() == b""
