"""Webhooks posted as livekit-server posts them, verified by livekit-api, delivered despite a receiver outage."""

import asyncio
import base64
import hashlib
import json
import time

import jwt
from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.control.webhooks import (
    INGRESS_ENDED,
    INGRESS_STARTED,
    DeliveryPolicy,
    WebhookNotifier,
    ingress_event,
    ingress_event_name,
    sign,
)
from tests.control.webhook_receiver import WebhookSink
from tests.harness.ports import free_port

S = IngressState.Status
FAST = DeliveryPolicy(retry_wait_min_s=0.2, retry_wait_max_s=1.0, max_retries=4, max_age_s=30.0)


def _info(ingress_id: str = "IN_webhook0001", status: int = S.ENDPOINT_PUBLISHING) -> IngressInfo:
    return IngressInfo(
        ingress_id=ingress_id,
        stream_key="streamkey001",
        room_name="room",
        participant_identity="p",
        reusable=True,
        state=IngressState(status=status, started_at=1_700_000_000_000_000_000, resource_id="RT_abcdefghijkl"),
    )


def test_which_status_changes_send_what() -> None:
    assert ingress_event_name(S.ENDPOINT_BUFFERING, S.ENDPOINT_PUBLISHING) == INGRESS_STARTED
    for ended in (S.ENDPOINT_INACTIVE, S.ENDPOINT_COMPLETE, S.ENDPOINT_ERROR):
        assert ingress_event_name(S.ENDPOINT_PUBLISHING, ended) == INGRESS_ENDED
    assert ingress_event_name(S.ENDPOINT_INACTIVE, S.ENDPOINT_BUFFERING) is None
    assert ingress_event_name(S.ENDPOINT_PUBLISHING, S.ENDPOINT_PUBLISHING) is None


def test_signature_is_a_bare_jwt_over_the_body() -> None:
    body = b'{"event":"ingress_started"}'
    token = sign(body, "devkey", "secret", now=1000)
    claims = jwt.decode(token, "secret", algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims["iss"] == "devkey" and claims["exp"] - claims["nbf"] == 300
    assert claims["sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


async def test_events_arrive_signed_and_verified_in_order() -> None:
    sink = await WebhookSink(free_port()).start()
    notifier = WebhookNotifier([sink.url], "devkey", "secret", FAST)
    try:
        notifier.notify(ingress_event(INGRESS_STARTED, _info()))
        notifier.notify(ingress_event(INGRESS_ENDED, _info(status=S.ENDPOINT_INACTIVE)))
        first, second = await sink.wait_for(2, timeout=5)
    finally:
        await notifier.close()
        await sink.stop()
    assert [first.event.event, second.event.event] == [INGRESS_STARTED, INGRESS_ENDED]
    assert first.headers["Content-Type"] == "application/webhook+json"
    assert first.headers["User-Agent"] == "LiveKit"
    assert not first.headers["Authorization"].startswith("Bearer")
    assert first.event.id.startswith("EV_") and abs(first.event.created_at - time.time()) < 10
    assert first.event.ingress_info.state.resource_id == "RT_abcdefghijkl"
    # protojson defaults: lowerCamel keys, int64 as strings, enum names, zero values left out.
    body = json.loads(first.body)
    assert body["ingressInfo"]["state"] == {
        "status": "ENDPOINT_PUBLISHING",
        "startedAt": "1700000000000000000",
        "resourceId": "RT_abcdefghijkl",
    }
    assert "inputType" not in body["ingressInfo"]  # RTMP_INPUT is the zero value
    assert json.loads(second.body)["ingressInfo"]["state"].get("status") is None  # INACTIVE is the zero value
    assert sink.refused == []


async def test_a_receiver_that_is_down_gets_the_event_when_it_is_back() -> None:
    port = free_port()
    notifier = WebhookNotifier([f"http://127.0.0.1:{port}/webhook"], "devkey", "secret", FAST)
    try:
        started = time.monotonic()
        notifier.notify(ingress_event(INGRESS_STARTED, _info()))
        assert time.monotonic() - started < 0.05  # enqueue only: a session never waits for a receiver
        await asyncio.sleep(0.5)  # connection refused, retrying with backoff
        sink = await WebhookSink(port).start()
        try:
            (received,) = await sink.wait_for(1, timeout=5)
            assert received.event.event == INGRESS_STARTED
            assert notifier.stats.sent == 1 and notifier.stats.failed == 0
        finally:
            await sink.stop()
    finally:
        await notifier.close()


async def test_server_errors_are_retried_client_errors_are_not() -> None:
    sink = await WebhookSink(free_port(), fail_first=2, fail_status=502).start()
    notifier = WebhookNotifier([sink.url], "devkey", "secret", FAST)
    try:
        notifier.notify(ingress_event(INGRESS_STARTED, _info()))
        await sink.wait_for(1, timeout=5)
        assert sink.attempts == 3
        # 401 from the receiver (here: it does not know the key) is final: one attempt, no retries.
        wrong = WebhookNotifier([sink.url], "devkey", "not-the-secret", FAST)
        wrong.notify(ingress_event(INGRESS_ENDED, _info("IN_other000001")))
        await asyncio.sleep(0.6)
        await wrong.close()
        assert sink.attempts == 4 and len(sink.refused) == 1
    finally:
        await notifier.close()
        await sink.stop()


async def test_events_older_than_max_age_are_dropped_and_queues_are_bounded() -> None:
    now = [0.0]
    policy = DeliveryPolicy(retry_wait_min_s=0.05, retry_wait_max_s=0.05, max_retries=0, max_age_s=30.0, max_depth=2)
    sink = await WebhookSink(free_port()).start()
    notifier = WebhookNotifier([sink.url], "devkey", "secret", policy, clock=lambda: now[0])
    try:
        for _ in range(3):  # the third does not fit a queue 2 deep
            notifier.notify(ingress_event(INGRESS_STARTED, _info()))
        now[0] = 31.0  # both queued events are now too old to matter
        await asyncio.sleep(0.3)
        assert notifier.stats.dropped == 3 and sink.received == []
        notifier.notify(ingress_event(INGRESS_ENDED, _info()))
        await sink.wait_for(1, timeout=5)
    finally:
        await notifier.close()
        await sink.stop()
