"""The feed the dashboard listens to: every stored change of an ingress, from the API and from sessions."""

from pathlib import Path

from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
    UpdateIngressRequest,
)

from tests.control.service_fixture import running_service

S = IngressState.Status


async def test_creates_updates_states_and_deletes_are_told_in_order(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        seen: list[tuple[str, str | None]] = []

        def observer(ingress_id: str, info: IngressInfo | None) -> None:
            seen.append((ingress_id, None if info is None else S.Name(info.state.status)))

        unsubscribe = running.control.changes.subscribe(observer)
        async with running.client() as client:
            info = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name="a", room_name="r", participant_identity="p"
                )
            )
            await client.ingress.update_ingress(UpdateIngressRequest(ingress_id=info.ingress_id, name="b"))
            state = IngressState(status=S.ENDPOINT_BUFFERING, resource_id="RT_x", started_at=1, updated_at=1)
            await running.control.update_state(info.ingress_id, state)
            await client.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            unsubscribe()
            await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name="c", room_name="r", participant_identity="p"
                )
            )
        ingress = info.ingress_id
        inactive, buffering = "ENDPOINT_INACTIVE", "ENDPOINT_BUFFERING"
        assert seen[:3] == [(ingress, inactive), (ingress, inactive), (ingress, buffering)]  # create, update, state
        assert seen[-1] == (ingress, None)  # deleted (after the session's end, if one was told)
        assert len({i for i, _ in seen}) == 1  # nothing after unsubscribing


async def test_an_observer_that_raises_does_not_stop_the_change_or_the_others(tmp_path: Path) -> None:
    async with running_service(tmp_path) as running:
        seen: list[str] = []

        def broken(ingress_id: str, info: IngressInfo | None) -> None:
            raise RuntimeError("observer bug")

        running.control.changes.subscribe(broken)
        running.control.changes.subscribe(lambda ingress_id, info: seen.append(ingress_id))
        async with running.client() as client:
            info = await client.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=IngressInput.RTMP_INPUT, name="a", room_name="r", participant_identity="p"
                )
            )
            listed = await client.ingress.list_ingress(ListIngressRequest())
        assert seen == [info.ingress_id]
        assert [i.ingress_id for i in listed.items] == [info.ingress_id]
