"""Session state moves only along LiveKit's transitions, with ordering timestamps the stores rely on."""

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState, InputVideoState

from pyingress.session.state import SessionState


class RecordingSink:
    def __init__(self) -> None:
        self.updates: list[tuple[str, IngressState]] = []

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        self.updates.append((ingress_id, state))


def _session(reusable: bool = True, clock: list[int] | None = None) -> tuple[SessionState, RecordingSink]:
    sink = RecordingSink()
    ticks = iter(clock) if clock else None
    info = IngressInfo(ingress_id="IN_x", input_type=IngressInput.RTMP_INPUT, reusable=reusable)
    if ticks is None:
        return SessionState(info, "RT_y", sink), sink
    return SessionState(info, "RT_y", sink, clock_ns=lambda: next(ticks)), sink


async def test_push_session_lifecycle() -> None:
    session, sink = _session()
    await session.report()
    await session.input(video=InputVideoState(mime_type="video/H264", width=1280, height=720, framerate=30))
    await session.publishing(room_id="RM_1")
    await session.end()
    statuses = [state.status for _, state in sink.updates]
    assert statuses == [
        IngressState.ENDPOINT_BUFFERING,
        IngressState.ENDPOINT_BUFFERING,
        IngressState.ENDPOINT_PUBLISHING,
        IngressState.ENDPOINT_INACTIVE,
    ]
    final = sink.updates[-1][1]
    assert final.resource_id == "RT_y" and final.room_id == "RM_1" and final.video.width == 1280
    assert final.ended_at >= final.started_at > 0
    assert len({state.started_at for _, state in sink.updates}) == 1
    updated = [state.updated_at for _, state in sink.updates]
    assert updated == sorted(updated) and len(set(updated)) == len(updated)


async def test_url_session_completes() -> None:
    session, sink = _session(reusable=False)
    await session.end()
    assert sink.updates[-1][1].status == IngressState.ENDPOINT_COMPLETE


async def test_first_error_wins_and_nothing_follows_an_end() -> None:
    session, sink = _session()
    await session.fail("room disconnected unexpectedly")
    await session.fail("source encoder not ready")
    await session.end()
    await session.publishing()
    assert len(sink.updates) == 1
    assert sink.updates[0][1].status == IngressState.ENDPOINT_ERROR
    assert sink.updates[0][1].error == "room disconnected unexpectedly"


async def test_updated_at_increases_even_when_the_clock_does_not() -> None:
    session, sink = _session(clock=[100, 100, 90, 100, 100])
    await session.report()
    await session.publishing()
    await session.end()
    assert [state.updated_at for _, state in sink.updates] == [101, 102, 104]
    assert sink.updates[-1][1].ended_at == 103 and sink.updates[-1][1].started_at == 100
