"""IngressSession between a layered source and its pipeline: keyframe requests travel back to the publisher's
front door, and a transcoder is fed the best layer only.  Real sources, real pass-through, real standalone
control on SQLite; no media reaches a room here (the room URL is never dialled)."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput
from livekit.protocol.models import VideoQuality

from pyingress.control.state import StandaloneControl
from pyingress.control.store import IngressStore
from pyingress.ingest.source import FlowPolicy, MediaSource
from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineStats
from pyingress.media.latency import LatencyRecorder
from pyingress.media.packets import EncodedPacket, StreamDescription
from pyingress.media.pipeline import MediaPipeline, open_pipeline
from pyingress.media.sinks import CallbackSink
from pyingress.session.session import IngressSession, SessionSettings
from pyingress.session.state import SessionState
from tests.control.records import stored_ingress
from tests.media.media_helpers import Source, demux, make_clip, simulcast

SETTINGS = SessionSettings(ws_url="ws://127.0.0.1:9", api_key="devkey", api_secret="secret")
VP8 = ("-c:v", "libvpx", "-deadline", "realtime", "-g", "10", "-b:v", "300k")
SIZES = {VideoQuality.HIGH: "640x360", VideoQuality.MEDIUM: "320x180", VideoQuality.LOW: "160x90"}


@pytest.fixture(scope="module")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> Source:
    folder = tmp_path_factory.mktemp("simulcast")
    clips = {q: make_clip(folder / f"{q}.webm", size=s, duration=1.0, video=VP8, audio=None) for q, s in SIZES.items()}
    return simulcast({quality: demux(path) for quality, path in clips.items()})


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[StandaloneControl]:
    store = IngressStore(tmp_path / "ingress.sqlite3")
    yield StandaloneControl(store)
    store.close()


def _session(control: StandaloneControl, info: IngressInfo, factory: object = open_pipeline) -> IngressSession:
    state = SessionState(info, "SR_session00001", control)
    return IngressSession(info, state, SETTINGS, factory)  # type: ignore[arg-type]


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_keyframe_the_room_asks_for_reaches_the_publishers_door_on_that_layer(
    control: StandaloneControl, three_layers: Source
) -> None:
    info = stored_ingress(control.store, IngressInput.WHIP_INPUT, enable_transcoding=False)
    session = _session(control, info)
    running = asyncio.create_task(session.run())
    source = MediaSource(protocol="whip", stream_key=info.stream_key, flow=FlowPolicy.DROP_TO_KEYFRAME)
    asked: list[int | None] = []
    source.on_keyframe_request(asked.append)
    session.attach(source)
    for description in three_layers.streams:
        assert source.put_nowait(description)
    try:
        await _until(lambda: session._pipeline is not None and not source._queue)  # the pipeline has the layers
        # What the room publisher calls when a subscriber's PLI arrives for a layer:
        session._on_keyframe_request(VideoQuality.MEDIUM)
        session._on_keyframe_request(VideoQuality.LOW)
        await _until(lambda: len(asked) == 2)
        assert asked == [VideoQuality.MEDIUM, VideoQuality.LOW]
        assert source.keyframe_requests == {VideoQuality.MEDIUM: 1, VideoQuality.LOW: 1}
    finally:
        await session.stop("test over")
        await running


class _FeedLog:
    """A stand-in pipeline that only records what the session feeds it (the session's choice is under test)."""

    def __init__(self, config: PipelineConfig, sink: CallbackSink) -> None:
        self.latency = LatencyRecorder()
        self.described: list[StreamDescription] = []
        self.pushed: list[EncodedPacket] = []

    def add_stream(self, desc: StreamDescription) -> None:
        self.described.append(desc)

    def push(self, packet: EncodedPacket) -> None:
        self.pushed.append(packet)

    def end(self) -> None: ...

    def request_keyframe(self, quality: int) -> None: ...

    def set_layer_active(self, quality: int, active: bool) -> None: ...

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None: ...

    @property
    def stats(self) -> PipelineStats:
        return PipelineStats()


def _layers(items: Iterator[StreamDescription | EncodedPacket]) -> set[int | None]:
    return {item.layer for item in items}


@pytest.mark.parametrize("transcoded", [True, False])
async def test_a_transcoder_gets_the_best_layer_and_pass_through_gets_them_all(
    control: StandaloneControl, three_layers: Source, transcoded: bool
) -> None:
    info = stored_ingress(control.store, IngressInput.WHIP_INPUT, enable_transcoding=transcoded)
    fed: list[_FeedLog] = []

    def factory(config: PipelineConfig, sink: CallbackSink) -> MediaPipeline:
        fed.append(_FeedLog(config, sink))
        return fed[-1]

    session = _session(control, info, factory)
    running = asyncio.create_task(session.run())
    source = MediaSource(protocol="whip", stream_key=info.stream_key, flow=FlowPolicy.DROP_TO_KEYFRAME)
    session.attach(source)
    # The lowest layer is described first here: "best" is the best described, not the first.
    for description in reversed(three_layers.streams):
        source.put_nowait(description)
    packets = three_layers.packets[:30]
    for packet in packets:
        source.put_nowait(packet)
    try:
        await _until(lambda: bool(fed) and len(fed[0].pushed) + len(fed[0].described) > 0 and not source._queue)
        log = fed[0]
        if transcoded:
            assert _layers(iter(log.described)) == {VideoQuality.HIGH}
            assert _layers(iter(log.pushed)) == {VideoQuality.HIGH}
            assert len(log.pushed) == sum(p.layer == VideoQuality.HIGH for p in packets)
        else:
            assert _layers(iter(log.described)) == set(SIZES)
            assert len(log.pushed) == len(packets)
    finally:
        await session.stop("test over")
        await running


async def test_a_better_layer_described_late_does_not_switch_the_transcoders_input(
    control: StandaloneControl, three_layers: Source
) -> None:
    info = stored_ingress(control.store, IngressInput.WHIP_INPUT, enable_transcoding=True)
    fed: list[_FeedLog] = []

    def factory(config: PipelineConfig, sink: CallbackSink) -> MediaPipeline:
        fed.append(_FeedLog(config, sink))
        return fed[-1]

    session = _session(control, info, factory)
    running = asyncio.create_task(session.run())
    source = MediaSource(protocol="whip", stream_key=info.stream_key, flow=FlowPolicy.DROP_TO_KEYFRAME)
    session.attach(source)
    early = [d for d in three_layers.streams if d.layer != VideoQuality.HIGH]
    late = [d for d in three_layers.streams if d.layer == VideoQuality.HIGH]
    before = [p for p in three_layers.packets[:30] if p.layer != VideoQuality.HIGH]
    for item in [*early, *before, *late, *three_layers.packets[30:60]]:
        source.put_nowait(item)
    try:
        await _until(lambda: bool(fed) and not source._queue)
        log = fed[0]
        assert _layers(iter(log.described)) == {VideoQuality.MEDIUM}
        assert _layers(iter(log.pushed)) == {VideoQuality.MEDIUM}
    finally:
        await session.stop("test over")
        await running
