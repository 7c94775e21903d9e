"""MediaSource: what a session reads from any front door, and how the two sides end it."""

import asyncio
from fractions import Fraction

from pyingress.ingest.source import EndReason, MediaSource
from pyingress.media.packets import EncodedPacket, StreamDescription


def packet(i: int, size: int = 10) -> EncodedPacket:
    return EncodedPacket("audio", "aac", bytes(size), i, i, Fraction(1, 1000), True)


async def test_items_arrive_in_order_and_iteration_ends_after_the_last() -> None:
    source = MediaSource(protocol="rtmp", stream_key="K")
    description = StreamDescription("audio", "aac", b"\x11\x90", sample_rate=48000, channels=2)
    await source.put(description)
    for i in range(3):
        await source.put(packet(i))
    source.end(EndReason.UNPUBLISHED)
    assert [item async for item in source] == [description, packet(0), packet(1), packet(2)]
    assert source.descriptions == {"audio": description}
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
