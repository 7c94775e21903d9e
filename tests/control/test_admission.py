"""Admission when its caller goes away mid-way: what was stored is ended, never left BUFFERING."""

import asyncio
from pathlib import Path

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.admission import admit_session
from pyingress.control.state import StandaloneControl
from pyingress.control.store import IngressStore
from tests.control.records import stored_ingress

S = IngressState.Status


class _SlowWrites:
    """The real control whose state writes wait for a permit, as a slow disk or a busy bus would."""

    def __init__(self, inner: StandaloneControl) -> None:
        self.inner = inner
        self.gate = asyncio.Semaphore(0)
        self.writing = asyncio.Event()  # a write has begun

    async def get_ingress_info(self, *, stream_key: str = "", ingress_id: str = "") -> IngressInfo:
        return await self.inner.get_ingress_info(stream_key=stream_key, ingress_id=ingress_id)

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        self.writing.set()
        await self.gate.acquire()
        await self.inner.update_state(ingress_id, state)

    async def create_ingress(self, info: IngressInfo) -> None:
        await self.inner.create_ingress(info)


async def test_an_admission_cancelled_while_buffering_is_stored_ends_inactive(tmp_path: Path) -> None:
    store = IngressStore(tmp_path / "ingress.sqlite3")
    try:
        control = _SlowWrites(StandaloneControl(store))
        info = stored_ingress(store)
        admitting = asyncio.create_task(
            admit_session(control, stream_key=info.stream_key, input_type=IngressInput.RTMP_INPUT, resource_id="RT_a")
        )
        await asyncio.wait_for(control.writing.wait(), 5)
        admitting.cancel()  # e.g. the RTMP door's admission timeout
        await asyncio.gather(admitting, return_exceptions=True)
        assert admitting.cancelled()
        control.gate.release()  # the BUFFERING write lands after all
        await asyncio.sleep(0.05)
        assert store.load(info.ingress_id).state.status == S.ENDPOINT_BUFFERING
        control.gate.release()  # and the INACTIVE that follows it
        for _ in range(100):
            if store.load(info.ingress_id).state.status != S.ENDPOINT_BUFFERING:
                break
            await asyncio.sleep(0.01)
        state = store.load(info.ingress_id).state
        assert state.status == S.ENDPOINT_INACTIVE and state.resource_id == "RT_a" and state.ended_at > 0
    finally:
        store.close()
