"""MediaSource: what a session reads from any front door, what a full queue does, and how the two sides end it."""

import asyncio
from collections.abc import Callable
from fractions import Fraction

import pytest
from prometheus_client import REGISTRY

from pyingress.ingest.source import EndReason, FlowPolicy, MediaSource, SourceItem
from pyingress.media.packets import EncodedPacket, StreamDescription

LOW, MEDIUM, HIGH = 0, 1, 2
NO_DROPS = {"audio": 0, "video": 0}


def packet(i: int, size: int = 10, codec_config: bytes | None = None) -> EncodedPacket:
    return EncodedPacket("audio", "aac", bytes(size), i, i, Fraction(1, 1000), True, codec_config)


def video(i: int, layer: int | None, keyframe: bool = False, codec_config: bytes | None = None) -> EncodedPacket:
    return EncodedPacket("video", "vp8", bytes(10), i, i, Fraction(1, 90000), keyframe, codec_config, layer)


class Clock:
    """Monotonic seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rtp_source(max_items: int = 1024, clock: Callable[[], float] | None = None, protocol: str = "whip") -> MediaSource:
    return MediaSource(
        protocol=protocol,
        stream_key="K",
        flow=FlowPolicy.DROP_TO_KEYFRAME,
        max_items=max_items,
        clock=clock or Clock(),  # still, unless the test moves it: only the item bound applies
    )


async def take(source: MediaSource, count: int) -> list[SourceItem]:
    """What the consumer reads next, as far as the source has it."""
    iterator = aiter(source)
    return [await asyncio.wait_for(anext(iterator), 1) for _ in range(count)]


async def rest(source: MediaSource) -> list[SourceItem]:
    """End the source and read what is left."""
    source.end(EndReason.UNPUBLISHED)
    return [item async for item in source]


def source_metrics(protocol: str) -> tuple[float, float, float]:
    """Prometheus's video drops, audio drops and keyframe requests for one input."""
    dropped, requests = "pyingress_source_packets_dropped_total", "pyingress_source_keyframe_requests_total"
    return (
        REGISTRY.get_sample_value(dropped, {"input": protocol, "kind": "video"}) or 0.0,
        REGISTRY.get_sample_value(dropped, {"input": protocol, "kind": "audio"}) or 0.0,
        REGISTRY.get_sample_value(requests, {"input": protocol}) or 0.0,
    )


async def test_items_arrive_in_order_and_iteration_ends_after_the_last() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K")
    description = StreamDescription("audio", "aac", b"\x11\x90", sample_rate=48000, channels=2)
    await source.put(description)
    for i in range(3):
        await source.put(packet(i))
    source.end(EndReason.UNPUBLISHED)
    assert [item async for item in source] == [description, packet(0), packet(1), packet(2)]
    assert source.descriptions == {("audio", None): description}
    assert (source.packets_received, source.bytes_received, source.end_reason) == (3, 30, EndReason.UNPUBLISHED)


async def test_a_full_queue_makes_the_producer_wait() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K", max_items=2)
    await source.put(packet(0))
    await source.put(packet(1))
    blocked = asyncio.ensure_future(source.put(packet(2)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    iterator = aiter(source)
    assert await anext(iterator) == packet(0)
    await asyncio.wait_for(blocked, 1)


async def test_the_byte_bound_also_applies_but_never_blocks_a_single_large_item() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K", max_bytes=100)
    await asyncio.wait_for(source.put(packet(0, 500)), 1)  # alone in the queue: accepted
    blocked = asyncio.ensure_future(source.put(packet(1, 50)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    await anext(aiter(source))
    await asyncio.wait_for(blocked, 1)


async def test_close_calls_the_front_door_and_ends_the_reader() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K", max_items=1)
    reasons: list[str] = []
    source.on_close(reasons.append)
    await source.put(packet(0))
    waiting = asyncio.ensure_future(source.put(packet(1)))
    source.close("newer publisher")
    source.close("again")  # idempotent
    await asyncio.wait_for(waiting, 1)  # the producer is released
    assert reasons == ["newer publisher"]
    assert [item async for item in source] == []
    assert source.end_reason is EndReason.CLOSED
    await source.put(packet(2))  # ignored once ended
    assert source.packets_received == 1


async def test_a_waiting_reader_wakes_on_end_and_the_first_end_wins() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K")
    reader = asyncio.ensure_future(anext(aiter(source), None))
    await asyncio.sleep(0.01)
    source.end(EndReason.ERROR, "bad chunk")
    source.end(EndReason.DISCONNECTED)
    assert await asyncio.wait_for(reader, 1) is None
    assert (source.end_reason, source.error) == (EndReason.ERROR, "bad chunk")
    await asyncio.wait_for(source.wait_ended(), 1)


# -- layered descriptions -------------------------------------------------------------------------------------


async def test_descriptions_are_kept_per_kind_and_layer() -> None:
    source = MediaSource(protocol="whip", stream_key="K")
    audio = StreamDescription("audio", "opus", sample_rate=48000, channels=2)
    layers = {
        layer: StreamDescription("video", "vp8", width=320 << layer, height=180 << layer, layer=layer)
        for layer in (LOW, HIGH, MEDIUM)
    }
    for description in (audio, *layers.values()):
        await source.put(description)
    assert source.video_layers() == [HIGH, MEDIUM, LOW]
    assert source.description("video", MEDIUM) is layers[MEDIUM]
    assert source.description("audio") is audio
    assert source.description("video") is None  # no single-layer video in a simulcast publish
    assert set(source.descriptions) == {("audio", None), ("video", LOW), ("video", MEDIUM), ("video", HIGH)}
    bigger = StreamDescription("video", "vp8", width=1920, height=1080, layer=HIGH)
    await source.put(bigger)
    assert (source.description("video", HIGH), source.description("video", LOW)) == (bigger, layers[LOW])
    assert await rest(source) == [audio, *layers.values(), bigger]


async def test_a_single_layer_stream_has_the_one_video_layer_none() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K")
    assert source.video_layers() == []
    description = StreamDescription("video", "h264", b"avcC", width=1280, height=720)
    await source.put(description)
    assert source.video_layers() == [None]
    assert source.description("video") is description


# -- BLOCK ----------------------------------------------------------------------------------------------------


async def test_block_has_no_time_bound_and_drops_nothing() -> None:
    clock = Clock()
    source = MediaSource(protocol="rtmp", stream_key="K", max_items=3, max_delay=1.0, clock=clock)
    await source.put(video(0, None, keyframe=True))
    clock.now += 10  # a consumer far behind: TCP pushes back instead
    await asyncio.wait_for(source.put(video(1, None)), 1)
    assert (source.packets_dropped, source.keyframe_requests) == (NO_DROPS, {})
    assert await rest(source) == [video(0, None, keyframe=True), video(1, None)]


def test_put_nowait_under_block_refuses_a_full_queue_instead_of_dropping() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K", max_items=1)
    assert source.put_nowait(packet(0))
    with pytest.raises(asyncio.QueueFull):
        source.put_nowait(packet(1))
    assert (source.packets_received, source.packets_dropped) == (1, NO_DROPS)


# -- DROP_TO_KEYFRAME -----------------------------------------------------------------------------------------


async def test_drop_to_keyframe_never_waits_and_never_drops_descriptions() -> None:
    source = rtp_source(max_items=2)
    for i in range(4):
        await asyncio.wait_for(source.put(packet(i)), 0.1)  # a full queue does not hold the receive loop
    assert not source.put_nowait(packet(4))
    description = StreamDescription("audio", "opus", sample_rate=48000, channels=2)
    assert source.put_nowait(description)
    assert (source.packets_received, source.packets_dropped) == (5, {"audio": 3, "video": 0})
    assert await rest(source) == [packet(0), packet(1), description]


async def test_a_cut_layer_drops_to_its_next_keyframe_while_the_other_layers_go_on() -> None:
    source = rtp_source(max_items=3)
    assert source.put_nowait(video(0, HIGH, keyframe=True))
    assert source.put_nowait(video(0, LOW, keyframe=True))
    assert source.put_nowait(video(1, HIGH))
    assert not source.put_nowait(video(1, LOW))  # full: LOW is cut, and its queued packet goes with it
    assert source.put_nowait(video(2, HIGH))  # the room LOW left: HIGH is not cut
    assert await take(source, 1) == [video(0, HIGH, keyframe=True)]
    assert not source.put_nowait(video(2, LOW))  # there is room, but LOW waits for a keyframe
    assert source.put_nowait(video(3, LOW, keyframe=True))
    assert await take(source, 1) == [video(1, HIGH)]
    assert source.put_nowait(video(4, LOW))
    assert await rest(source) == [video(2, HIGH), video(3, LOW, keyframe=True), video(4, LOW)]
    assert source.packets_dropped == {"audio": 0, "video": 3}
    assert source.keyframe_requests == {LOW: 1}


async def test_audio_that_does_not_fit_is_dropped_alone() -> None:
    source = rtp_source(max_items=2)
    assert source.put_nowait(video(0, None, keyframe=True))
    assert source.put_nowait(packet(0))
    assert not source.put_nowait(packet(1))
    assert await take(source, 1) == [video(0, None, keyframe=True)]
    assert source.put_nowait(video(1, None))  # an audio drop does not cut the video
    assert not source.put_nowait(packet(2))
    assert await take(source, 1) == [packet(0)]
    assert source.put_nowait(packet(3))  # nor does audio wait for anything
    assert await rest(source) == [video(1, None), packet(3)]
    assert (source.packets_dropped, source.keyframe_requests) == ({"audio": 2, "video": 0}, {})


async def test_the_queue_is_bounded_in_time_from_the_oldest_packet() -> None:
    clock = Clock()
    source = rtp_source(clock=clock)  # max_delay 1 s
    assert source.put_nowait(video(0, None, keyframe=True))
    clock.now += 0.5
    assert source.put_nowait(packet(0))
    clock.now += 0.5
    assert source.put_nowait(packet(1))  # the oldest waited exactly max_delay: still in time
    clock.now += 0.1
    assert not source.put_nowait(packet(2))
    assert not source.put_nowait(video(1, None))  # the video is cut, its stale keyframe goes: audio is oldest now
    clock.now += 0.1
    assert source.put_nowait(video(2, None, keyframe=True))  # 0.7 s behind: the keyframe fits and ends the cut
    assert await rest(source) == [packet(0), packet(1), video(2, None, keyframe=True)]
    assert source.packets_dropped == {"audio": 1, "video": 2}
    assert source.keyframe_requests == {None: 1}


async def test_a_keyframe_that_fits_once_its_layers_stale_packets_are_gone_ends_the_cut_unasked() -> None:
    source = rtp_source(max_items=3)
    for item in (packet(0), video(0, None, keyframe=True), video(1, None)):
        assert source.put_nowait(item)
    assert source.put_nowait(video(2, None, keyframe=True))
    assert source.put_nowait(video(3, None))
    assert await rest(source) == [packet(0), video(2, None, keyframe=True), video(3, None)]
    assert (source.packets_dropped, source.keyframe_requests) == ({"audio": 0, "video": 2}, {})


def test_a_cut_asks_its_layer_for_a_keyframe_once() -> None:
    source = rtp_source(max_items=2)
    asked: list[int | None] = []
    source.on_keyframe_request(asked.append)
    assert source.put_nowait(video(0, MEDIUM, keyframe=True))
    assert source.put_nowait(video(0, LOW, keyframe=True))
    assert [source.put_nowait(video(i, MEDIUM)) for i in range(1, 5)] == [False] * 4
    assert asked == [MEDIUM]
    assert source.put_nowait(video(5, MEDIUM, keyframe=True))  # the cut is over
    assert not source.put_nowait(video(6, MEDIUM))  # full again: a new cut, a new request
    assert asked == [MEDIUM, MEDIUM]
    assert source.keyframe_requests == {MEDIUM: 2}


def test_a_cut_layer_whose_keyframe_is_dropped_too_asks_again() -> None:
    source = rtp_source(max_items=2)
    asked: list[int | None] = []
    source.on_keyframe_request(asked.append)
    assert source.put_nowait(video(0, MEDIUM, keyframe=True))
    assert source.put_nowait(video(0, LOW, keyframe=True))
    assert not source.put_nowait(video(1, MEDIUM))  # cut: its stale keyframe goes, and a keyframe is asked for
    assert source.put_nowait(video(1, LOW))  # the other layer fills the room again
    assert not source.put_nowait(video(2, MEDIUM, keyframe=True))  # the awaited keyframe does not fit either
    assert asked == [MEDIUM, MEDIUM]  # asked again: nothing else would ever end the cut


async def test_a_dropped_packets_codec_config_rides_on_the_next_queued_packet_of_its_stream() -> None:
    source = rtp_source(max_items=2)
    assert source.put_nowait(video(0, LOW, keyframe=True, codec_config=b"vp8-a"))
    assert source.put_nowait(packet(0))
    assert not source.put_nowait(packet(1, codec_config=b"aac-b"))
    assert not source.put_nowait(video(1, LOW))  # the cut takes the queued keyframe and its config
    assert await take(source, 1) == [packet(0)]
    assert source.put_nowait(video(2, LOW, keyframe=True))
    assert source.put_nowait(packet(2))
    assert await rest(source) == [video(2, LOW, keyframe=True, codec_config=b"vp8-a"), packet(2, codec_config=b"aac-b")]


def test_drops_and_keyframe_requests_are_counted_in_prometheus() -> None:
    before = source_metrics("whip-metrics-test")
    source = rtp_source(max_items=1, protocol="whip-metrics-test")
    assert source.put_nowait(video(0, HIGH, keyframe=True))
    assert not source.put_nowait(packet(0))
    assert not source.put_nowait(video(1, HIGH))  # cut: its queued keyframe and itself, and a request
    source.request_keyframe(LOW)
    after = source_metrics("whip-metrics-test")
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (2, 1, 2)


# -- the keyframe back-channel and the end ----------------------------------------------------------------------


def test_keyframe_requests_reach_the_front_door_that_can_ask_every_time() -> None:
    source = MediaSource(protocol="whip", stream_key="K")
    asked: list[int | None] = []
    source.on_keyframe_request(asked.append)
    for layer in (HIGH, HIGH, LOW):
        source.request_keyframe(layer)
    assert asked == [HIGH, HIGH, LOW]  # not rate limited here: the door knows its RTCP timing
    assert source.keyframe_requests == {HIGH: 2, LOW: 1}


def test_a_door_that_cannot_ask_its_encoder_only_counts_the_requests() -> None:
    before = source_metrics("rtmp")
    source = MediaSource(protocol="rtmp", stream_key="K")
    source.request_keyframe(None)
    source.request_keyframe(None)
    assert source.keyframe_requests == {None: 2}
    assert source_metrics("rtmp")[2] - before[2] == 2


@pytest.mark.parametrize(
    "stop", [lambda s: s.end(EndReason.DISCONNECTED), lambda s: s.close("kicked")], ids=["end", "close"]
)
def test_nothing_is_queued_dropped_or_asked_for_after_the_end(stop: Callable[[MediaSource], None]) -> None:
    source = rtp_source(max_items=1)
    asked: list[int | None] = []
    source.on_keyframe_request(asked.append)
    assert source.put_nowait(video(0, None, keyframe=True))
    stop(source)
    assert not source.put_nowait(video(1, None))  # while live this would have cut the layer and asked
    source.request_keyframe(None)
    assert (asked, source.keyframe_requests, source.packets_dropped) == ([], {}, NO_DROPS)
    assert source.packets_received == 1


def test_attributes_from_the_media_reach_the_session_and_stay_until_the_end() -> None:
    source = MediaSource(protocol="url", stream_key="")
    heard: list[dict[str, str]] = []
    source.on_attributes(heard.append)
    source.set_attributes({"ingress.outOfNetwork.eventID": "42"})
    source.set_attributes({})  # nothing to say: nobody is told
    source.set_attributes({"ingress.outOfNetwork.eventID": ""})
    assert heard == [{"ingress.outOfNetwork.eventID": "42"}, {"ingress.outOfNetwork.eventID": ""}]
    assert source.attributes == {"ingress.outOfNetwork.eventID": ""}
    source.end(EndReason.COMPLETE)
    source.set_attributes({"ingress.outOfNetwork.eventID": "43"})
    assert len(heard) == 2
