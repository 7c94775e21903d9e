"""The worker pipe protocol: round trips for every message, arbitrary chunking, and hostile bytes."""

import contextlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyingress.media.config import PipelineConfig
from pyingress.media.events import (
    PipelineEvent,
    PipelineFailed,
    PipelineStats,
    SpliceReached,
    StatsUpdated,
    UpstreamKeyframeNeeded,
    VideoLayersReady,
)
from pyingress.media.input_state import InputVideo
from pyingress.media.layer_plan import LayerFit, PlannedLayer
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.presets import audio_preset, video_preset
from pyingress.media.wire import (
    ConfigMessage,
    EndOfStream,
    EventMessage,
    FrameMessage,
    KeyframeRequest,
    LayerActive,
    MessageReader,
    PacketMessage,
    StreamMessage,
    WireError,
    encode_config,
    encode_end,
    encode_event,
    encode_keyframe_request,
    encode_layer_active,
    encode_output,
    encode_packet,
    encode_stream,
)

CONFIG = PipelineConfig(video_preset(1), audio_preset(1), layer_fit=LayerFit.LIVEKIT, session_id="IN_x")
DESC = StreamDescription("video", "h264", b"\x01\x64\x00\x1f", 1920, 1080, 29.97)
PACKET = EncodedPacket("video", "h264", b"\x00\x00\x00\x02\x65\x88", -5, -40, Fraction(1, 1000), True, b"\x01\x02")
FRAME = OutputFrame("video", "h264", b"\x00\x00\x00\x01\x65", 3000, Fraction(1, 90000), True, 2, 1920, 1080, 3000)
AUDIO = OutputFrame("audio", "opus", b"\xfc\xff", 960, Fraction(1, 48000), duration=960)
EVENTS: list[PipelineEvent] = [
    VideoLayersReady(
        "h264", 30, 1080, 1920, (PlannedLayer(0, 270, 480, 437_500), PlannedLayer(2, 1080, 1920, 3_500_000))
    ),
    StatsUpdated(PipelineStats({"frames_out.HIGH": 3}), InputVideo("video/H264", 1920, 1080, 30.0, 5_000_000)),
    PipelineFailed("video decoder (h264) failed"),
    SpliceReached(4242, True),
    UpstreamKeyframeNeeded(1),
    UpstreamKeyframeNeeded(None),
]


def _stream() -> bytes:
    return b"".join(
        [
            encode_config(CONFIG),
            encode_stream(DESC),
            encode_packet(PACKET, 123),
            encode_keyframe_request(2),
            encode_layer_active(0, False),
            encode_end(),
            encode_output(FRAME, 456),
            encode_output(AUDIO, 789),
            *[encode_event(event) for event in EVENTS],
        ]
    )


EXPECTED = [
    ConfigMessage(CONFIG),
    StreamMessage(DESC),
    PacketMessage(PACKET, 123),
    KeyframeRequest(2),
    LayerActive(0, False),
    EndOfStream(),
    FrameMessage(FRAME, 456),
    FrameMessage(AUDIO, 789),
    *[EventMessage(event) for event in EVENTS],
]


def test_every_message_round_trips() -> None:
    assert MessageReader().feed(_stream()) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_messages(sizes: list[int]) -> None:
    data = _stream()
    reader = MessageReader()
    messages = []
    position = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        messages += reader.feed(data[position : position + size])
        position += size
        if position >= len(data):
            break
    assert messages == EXPECTED


def test_a_packet_without_config_keeps_none() -> None:
    packet = EncodedPacket("audio", "aac", b"\x21", 0, 0, Fraction(1, 1000))
    reader = MessageReader()
    reader.feed(encode_stream(StreamDescription("audio", "aac")))
    assert reader.feed(encode_packet(packet, 1)) == [PacketMessage(packet, 1)]


def test_oversized_lengths_are_refused() -> None:
    with pytest.raises(WireError, match="bad message length"):
        MessageReader().feed(b"\xff\xff\xff\xffP")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_hostile_bytes_raise_only_wire_errors(data: bytes) -> None:
    with contextlib.suppress(WireError):
        MessageReader().feed(data)


def test_an_event_that_is_not_a_json_object_is_a_wire_error() -> None:
    """Found by fuzz/media_parsers.py: the body of a "V" message was the JSON number 2."""
    with pytest.raises(WireError, match="malformed b'V' message"):
        MessageReader().feed(b"\x00\x00\x00\x03V2\x00")


@pytest.mark.parametrize(
    "fields",
    [
        '"event_id": "1", "out_of_network": true',
        '"event_id": 4294967296, "out_of_network": true',
        '"event_id": 1, "out_of_network": 1',
        '"event_id": 1e400, "out_of_network": false',
    ],
)
def test_a_splice_event_with_wrong_types_is_a_wire_error(fields: str) -> None:
    """The pull worker reads anyone's stream: its event id must be the 32-bit count SCTE-35 has, nothing bigger."""
    body = b'V{"type": "SpliceReached", ' + fields.encode() + b"}"
    with pytest.raises(WireError, match="malformed b'V' message"):
        MessageReader().feed(len(body).to_bytes(4, "big") + body)
