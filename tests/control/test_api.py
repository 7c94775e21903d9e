"""Ingress API semantics through LiveKit's Python client against an in-process service (protocol.md §1.5)."""

import asyncio
from pathlib import Path

import pytest
from livekit import api
from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressAudioOptions,
    IngressInfo,
    IngressInput,
    IngressState,
    IngressVideoOptions,
    ListIngressRequest,
    UpdateIngressRequest,
)
from livekit.protocol.models import TrackSource

from pyingress.control.admission import admit_session
from pyingress.control.errors import SERVER_CAPACITY_EXCEEDED
from pyingress.control.ids import BASE57_ALPHABET, is_base57_id
from pyingress.control.state import now_ns
from tests.control.service_fixture import running_service

S = IngressState.Status


def _rtmp(**fields: object) -> CreateIngressRequest:
    values: dict[str, object] = {
        "input_type": IngressInput.RTMP_INPUT,
        "name": "n",
        "room_name": "room",
        "participant_identity": "p",
    }
    return CreateIngressRequest(**{**values, **fields})  # type: ignore[arg-type]


async def test_create_for_each_input_type(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        try:
            rtmp = await lkapi.ingress.create_ingress(_rtmp())
            whip = await lkapi.ingress.create_ingress(_rtmp(input_type=IngressInput.WHIP_INPUT))
            whip_transcoded = await lkapi.ingress.create_ingress(
                _rtmp(
                    input_type=IngressInput.WHIP_INPUT,
                    enable_transcoding=True,
                    video=IngressVideoOptions(source=TrackSource.SCREEN_SHARE, preset=1),
                    audio=IngressAudioOptions(source=TrackSource.SCREEN_SHARE_AUDIO, preset=1),
                )
            )
            url = await lkapi.ingress.create_ingress(
                _rtmp(input_type=IngressInput.URL_INPUT, url="https://media.example.com/a clip.mp4")
            )
        finally:
            await lkapi.aclose()
    assert rtmp.url == "rtmp://ingress.example.com:1935/live"
    assert len(rtmp.stream_key) == 12 and set(rtmp.stream_key) <= set(BASE57_ALPHABET)
    assert is_base57_id(rtmp.ingress_id, "IN_") and rtmp.reusable
    assert (rtmp.enable_transcoding, rtmp.bypass_transcoding) == (True, False)
    assert not rtmp.HasField("enabled") and rtmp.state == IngressState()
    assert whip.url == f"{running.http_url}/w"  # default WHIP base: this service's HTTP listener
    assert (whip.enable_transcoding, whip.bypass_transcoding) == (False, True)
    assert whip_transcoded.enable_transcoding and whip_transcoded.video.preset == 1
    # URL ingresses: no stream key, single use, the source re-serialised; pulled at once, so the answer is
    # BUFFERING with the session's UR_ resource id (reference §1.6; that host never answers, which ends it later).
    assert url.stream_key == "" and not url.reusable
    assert url.url == "https://media.example.com/a%20clip.mp4"
    assert url.state.status == S.ENDPOINT_BUFFERING and url.state.resource_id.startswith("UR_")


async def test_update_list_delete(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        try:
            first = await lkapi.ingress.create_ingress(_rtmp(participant_name="First"))
            other = await lkapi.ingress.create_ingress(_rtmp(room_name="elsewhere"))
            url = await lkapi.ingress.create_ingress(_rtmp(input_type=IngressInput.URL_INPUT, url="http://h/a.mp4"))

            updated = await lkapi.ingress.update_ingress(
                UpdateIngressRequest(ingress_id=first.ingress_id, room_name="elsewhere", enabled=False)
            )
            # Only set fields overwrite; the stream key and URL stay.
            assert (updated.room_name, updated.participant_name, updated.enabled) == ("elsewhere", "First", False)
            assert (updated.stream_key, updated.url) == (first.stream_key, first.url)

            listed = await lkapi.ingress.list_ingress(ListIngressRequest(room_name="elsewhere"))
            assert [i.ingress_id for i in listed.items] == [first.ingress_id, other.ingress_id]
            everything = await lkapi.ingress.list_ingress(ListIngressRequest())
            assert len(everything.items) == 3
            one = await lkapi.ingress.list_ingress(ListIngressRequest(ingress_id=url.ingress_id, room_name="x"))
            assert [i.ingress_id for i in one.items] == [url.ingress_id]  # the id wins over the room

            with pytest.raises(api.TwirpError) as refused:
                await lkapi.ingress.update_ingress(UpdateIngressRequest(ingress_id=url.ingress_id, name="x"))
            assert refused.value.code == "invalid_argument"
            assert refused.value.message == "twirp error unknown: ingress is not reusable and cannot be modified"

            deleted = await lkapi.ingress.delete_ingress(DeleteIngressRequest(ingress_id=first.ingress_id))
            assert deleted.ingress_id == first.ingress_id and deleted.state.status == S.ENDPOINT_INACTIVE
            for call in (
                lkapi.ingress.delete_ingress(DeleteIngressRequest(ingress_id=first.ingress_id)),
                lkapi.ingress.list_ingress(ListIngressRequest(ingress_id=first.ingress_id)),
            ):
                with pytest.raises(api.TwirpError) as missing:
                    await call
                assert (missing.value.code, missing.value.status) == ("not_found", 404)
        finally:
            await lkapi.aclose()


async def test_update_of_an_errored_ingress_resets_it_to_inactive(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        try:
            info = await lkapi.ingress.create_ingress(_rtmp())
            failed = IngressState(status=S.ENDPOINT_ERROR, error="room disconnected", started_at=now_ns())
            await running.control.update_state(info.ingress_id, failed)
            updated = await lkapi.ingress.update_ingress(UpdateIngressRequest(ingress_id=info.ingress_id, name="again"))
        finally:
            await lkapi.aclose()
    assert updated.name == "again" and updated.state.status == S.ENDPOINT_INACTIVE
    assert updated.state.error == "room disconnected"  # as livekit-server: only the status is reset


async def test_update_and_delete_end_an_active_session(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        stops: list[str] = []

        async def start_session(info: IngressInfo) -> None:
            """What an RTMP session does: admission, PUBLISHING, and a stop hook that ends it INACTIVE."""
            admitted = await admit_session(
                running.control, stream_key=info.stream_key, input_type=info.input_type, resource_id="RT_session0001"
            )
            state = admitted.state
            state.status, state.updated_at = S.ENDPOINT_PUBLISHING, now_ns()
            await running.control.update_state(info.ingress_id, state)

            async def stop() -> None:
                stops.append(info.ingress_id)
                state.status, state.updated_at, state.ended_at = S.ENDPOINT_INACTIVE, now_ns(), now_ns()
                await running.control.update_state(info.ingress_id, state)
                unregister()

            unregister = running.sessions.register(info.ingress_id, stop)

        try:
            info = await lkapi.ingress.create_ingress(_rtmp())
            await start_session(info)
            updated = await lkapi.ingress.update_ingress(
                UpdateIngressRequest(ingress_id=info.ingress_id, participant_name="New name")
            )
            # Applied, and the session ended (the encoder reconnects to pick the change up).
            assert updated.participant_name == "New name" and stops == [info.ingress_id]
            assert not running.sessions.is_active(info.ingress_id)
            listed = await lkapi.ingress.list_ingress(ListIngressRequest(ingress_id=info.ingress_id))
            assert listed.items[0].state.status == S.ENDPOINT_INACTIVE
            assert listed.items[0].participant_name == "New name"

            await start_session(info)
            deleted = await lkapi.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            assert deleted.state.status == S.ENDPOINT_INACTIVE and stops == [info.ingress_id] * 2
        finally:
            await lkapi.aclose()


async def test_url_ingresses_start_their_session_at_create(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        started: list[str] = []

        async def start_pull(info: IngressInfo) -> None:
            started.append(info.url)
            state = IngressState(status=S.ENDPOINT_BUFFERING, started_at=now_ns(), resource_id="UR_pull00000001")
            state.updated_at = now_ns()
            await running.control.update_state(info.ingress_id, state)

        async def refuse(info: IngressInfo) -> None:
            raise SERVER_CAPACITY_EXCEEDED

        try:
            running.ingress_api.url_session_starter = start_pull
            info = await lkapi.ingress.create_ingress(_rtmp(input_type=IngressInput.URL_INPUT, url="srt://h:9000"))
            assert started == ["srt://h:9000"]
            assert info.state.status == S.ENDPOINT_BUFFERING and info.state.resource_id == "UR_pull00000001"

            running.ingress_api.url_session_starter = refuse
            with pytest.raises(api.TwirpError) as refused:
                await lkapi.ingress.create_ingress(_rtmp(input_type=IngressInput.URL_INPUT, url="http://h/b.mp4"))
            assert (refused.value.code, refused.value.status) == ("resource_exhausted", 429)
            # Nothing started, nothing stored.
            assert len((await lkapi.ingress.list_ingress(ListIngressRequest())).items) == 1
        finally:
            await lkapi.aclose()


async def test_concurrent_creates_each_get_their_own_key(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        lkapi = running.client()
        try:
            created = await asyncio.gather(*(lkapi.ingress.create_ingress(_rtmp(name=str(n))) for n in range(40)))
            listed = await lkapi.ingress.list_ingress(ListIngressRequest())
        finally:
            await lkapi.aclose()
    assert len({i.stream_key for i in created}) == 40
    assert {i.ingress_id for i in listed.items} == {i.ingress_id for i in created}
