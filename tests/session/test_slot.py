"""SourceSlot: the hand-over rules every push door shares — newest wins, reconnect grace, errors, stop."""

import asyncio

import pytest

from pyingress.ingest.source import EndReason, MediaSource
from pyingress.session.slot import REPLACED, SourceSlot


def _source(name: str) -> MediaSource:
    return MediaSource(protocol="rtmp", stream_key=name, resource_id="RT_slot")


def _closed_with(source: MediaSource) -> list[str]:
    reasons: list[str] = []
    source.on_close(reasons.append)
    return reasons


async def test_the_first_source_is_awaited_without_limit() -> None:
    slot = SourceSlot(grace_seconds=0.01)
    waiting = asyncio.create_task(slot.next_source())
    await asyncio.sleep(0.05)  # far past the grace window: the first publisher has no deadline
    assert not waiting.done()
    first = _source("a")
    slot.attach(first)
    assert await waiting is first and slot.current is first and slot.attached == 1


async def test_a_newer_publisher_replaces_the_playing_one() -> None:
    slot = SourceSlot(grace_seconds=5)
    old, new = _source("old"), _source("new")
    slot.attach(old)
    assert await slot.next_source() is old
    old_reasons = _closed_with(old)
    slot.attach(new)
    assert old_reasons == [REPLACED] and old.end_reason == EndReason.CLOSED
    assert await slot.next_source() is new  # no grace wait: the successor is already there
    assert slot.attached == 2 and slot.error is None


async def test_only_the_newest_of_several_waiting_publishers_plays() -> None:
    slot = SourceSlot(grace_seconds=5)
    first, second, third = _source("1"), _source("2"), _source("3")
    slot.attach(first)
    assert await slot.next_source() is first
    second_reasons = _closed_with(second)
    slot.attach(second)
    slot.attach(third)
    assert await slot.next_source() is third
    assert second_reasons == [REPLACED] and second.ended


@pytest.mark.parametrize("reason", [EndReason.DISCONNECTED, EndReason.UNPUBLISHED])
async def test_a_reconnect_within_the_grace_window_takes_over(reason: EndReason) -> None:
    slot = SourceSlot(grace_seconds=2)
    first, again = _source("a"), _source("a")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(reason)
    waiting = asyncio.create_task(slot.next_source())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    slot.attach(again)
    assert await waiting is again


async def test_the_grace_window_passing_ends_the_slot_cleanly() -> None:
    slot = SourceSlot(grace_seconds=0.1)
    first = _source("a")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(EndReason.DISCONNECTED)
    started = asyncio.get_running_loop().time()
    assert await slot.next_source() is None
    assert 0.09 <= asyncio.get_running_loop().time() - started < 1.0
    assert slot.error is None


async def test_a_source_error_ends_the_slot_with_its_message() -> None:
    slot = SourceSlot(grace_seconds=5)
    first = _source("a")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(EndReason.ERROR, "bad FLV tag")
    assert await slot.next_source() is None  # at once: an error is not waited out
    assert slot.error == "bad FLV tag"


async def test_an_error_already_followed_by_a_newer_publisher_is_not_the_end() -> None:
    slot = SourceSlot(grace_seconds=5)
    first, newer = _source("a"), _source("b")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(EndReason.ERROR, "broken")
    slot.attach(newer)
    assert await slot.next_source() is newer and slot.error is None


async def test_stop_closes_everything_and_wakes_the_waiter() -> None:
    slot = SourceSlot(grace_seconds=60)
    first = _source("a")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(EndReason.DISCONNECTED)
    waiting = asyncio.create_task(slot.next_source())
    await asyncio.sleep(0.01)
    slot.stop("ingress deleted")
    assert await asyncio.wait_for(waiting, 1) is None
    late = _source("late")
    late_reasons = _closed_with(late)
    slot.attach(late)  # after stop: refused at once with the stop's reason
    assert late_reasons == ["ingress deleted"] and slot.stopped


async def test_keyframe_requests_reach_the_playing_source_only() -> None:
    slot = SourceSlot(grace_seconds=5)
    slot.request_keyframe(2)  # nothing plays yet: nowhere to go, no error
    first = _source("a")
    asked: list[int | None] = []
    first.on_keyframe_request(asked.append)
    slot.attach(first)
    await slot.next_source()
    slot.request_keyframe(1)
    slot.request_keyframe(None)
    first.end(EndReason.DISCONNECTED)
    slot.request_keyframe(0)  # ended: not asked
    assert asked == [1, None]


async def test_a_publisher_arriving_while_the_session_tears_down_is_closed_at_once() -> None:
    slot = SourceSlot(grace_seconds=5)
    playing, late = _source("a"), _source("b")
    slot.attach(playing)
    await slot.next_source()
    slot.stop("room disconnected")  # the session's teardown
    assert playing.end_reason == EndReason.CLOSED
    late_reasons = _closed_with(late)
    slot.attach(late)  # admitted just before the session was seen as ending: nobody would ever read it
    assert late_reasons == ["room disconnected"] and late.ended


async def test_a_source_gone_silent_ends_the_slot_without_waiting_for_a_reconnect() -> None:
    slot = SourceSlot(grace_seconds=60)
    first = _source("a")
    slot.attach(first)
    assert await slot.next_source() is first
    first.end(EndReason.SILENT)
    assert await asyncio.wait_for(slot.next_source(), 1) is None and slot.error is None
