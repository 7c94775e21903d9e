"""The standalone control plane as `serve` wires it: config → store, keys, webhooks; sessions' view of it."""

import time
from pathlib import Path

import pytest
import yaml
from livekit.protocol.ingress import CreateIngressRequest, IngressState, UpdateIngressRequest

from pyingress.config import ConfigError, parse_config
from pyingress.control.admission import admit_session
from pyingress.control.standalone import build_standalone_control
from pyingress.control.state import now_ns
from tests.control.service_fixture import running_service
from tests.control.webhook_receiver import WebhookSink
from tests.harness.ports import free_port

S = IngressState.Status


async def test_webhooks_from_config_through_a_receiver_outage(tmp_path: Path) -> None:
    port = free_port()
    webhook = {"api_key": "devkey", "urls": [f"http://127.0.0.1:{port}/webhook"]}
    async with running_service(tmp_path, webhook=webhook) as running:
        lkapi = running.client()
        try:
            info = await lkapi.ingress.create_ingress(
                CreateIngressRequest(input_type=0, room_name="room", participant_identity="p")
            )
            # A session starts and publishes while the receiver is down: nothing waits for it.
            started = time.monotonic()
            admitted = await admit_session(
                running.control, stream_key=info.stream_key, input_type=0, resource_id="RT_webhook00001"
            )
            admitted.state.status, admitted.state.updated_at = S.ENDPOINT_PUBLISHING, now_ns()
            await running.control.update_state(info.ingress_id, admitted.state)
            admitted.state.status, admitted.state.error = S.ENDPOINT_ERROR, "room disconnected"
            admitted.state.updated_at = admitted.state.ended_at = now_ns()
            await running.control.update_state(info.ingress_id, admitted.state)
            assert time.monotonic() - started < 0.5
            # Update of the errored ingress resets it to INACTIVE, which (as in livekit-server) ends it again.
            await lkapi.ingress.update_ingress(UpdateIngressRequest(ingress_id=info.ingress_id, name="fixed"))

            sink = await WebhookSink(port).start()  # back within the retry window
            try:
                received = await sink.wait_for(3, timeout=10)
            finally:
                await sink.stop()
        finally:
            await lkapi.aclose()
    events = [(r.event.event, r.event.ingress_info.state.status) for r in received]
    assert events == [
        ("ingress_started", S.ENDPOINT_PUBLISHING),
        ("ingress_ended", S.ENDPOINT_ERROR),
        ("ingress_ended", S.ENDPOINT_INACTIVE),
    ]
    assert received[1].event.ingress_info.state.error == "room disconnected"
    assert {r.event.ingress_info.ingress_id for r in received} == {info.ingress_id}
    assert sink.refused == []


def test_webhooks_must_be_signed_with_the_configured_key(tmp_path: Path) -> None:
    body = {
        "api_key": "devkey",
        "api_secret": "secret",
        "store_path": str(tmp_path / "s.sqlite3"),
        "webhook": {"api_key": "otherkey", "urls": ["http://127.0.0.1:9/webhook"]},
    }
    with pytest.raises(ConfigError, match="unknown api key in webhook config"):
        build_standalone_control(parse_config(yaml.safe_dump(body), env={}))


def test_the_store_lives_where_the_config_says(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "ingress.sqlite3"
    body = {"api_key": "devkey", "api_secret": "secret", "store_path": str(path)}
    plane = build_standalone_control(parse_config(yaml.safe_dump(body), env={}))
    try:
        assert path.exists() and plane.api.rtmp_base_url == "rtmp://127.0.0.1:1935/live"
        assert plane.api.whip_base_url == "http://127.0.0.1:8080/w" and plane.api.url_session_starter is None
    finally:
        plane.store.close()
