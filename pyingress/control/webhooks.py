"""Ingress webhooks, posted the way livekit-server posts them (protocol.md §3), in the background.

- ``ingress_started`` when a state update changes the status to PUBLISHING; ``ingress_ended`` on a change to
  INACTIVE, COMPLETE or ERROR.  BUFFERING and same-status updates send nothing.
- Body: protojson with default options (lowerCamel names, unpopulated fields omitted); ``Content-Type:
  application/webhook+json``; ``User-Agent: LiveKit``; ``Authorization`` is a bare JWT (no "Bearer") signed with the
  webhook key, valid for 5 minutes, whose ``sha256`` claim is the standard base64 of the body's SHA-256.
- Delivery copies livekit/protocol's notifier: one ordered queue per receiver and resource (ingress id), at most
  200 events deep; an event older than 30 s when its turn comes is dropped; each POST is retried on connection
  errors, 429 and 5xx with exponential backoff 1 s, 2 s, 4 s, 8 s (at most 4 retries, waits capped at 30 s).

``notify`` only enqueues: a receiver that is down never slows a session or an API request.
"""

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import jwt
from jwt.warnings import InsecureKeyLengthWarning
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.webhook import WebhookEvent

from pyingress.control.ids import new_event_id
from pyingress.control.protojson import webhook_json

# LiveKit's development secret ("secret") is shorter than the 32 bytes PyJWT recommends; LiveKit accepts such keys,
# so PyJWT's warning would only repeat on every token.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

log = logging.getLogger("pyingress.webhooks")

CONTENT_TYPE = "application/webhook+json"
USER_AGENT = "LiveKit"
TOKEN_TTL_S = 5 * 60

INGRESS_STARTED = "ingress_started"
INGRESS_ENDED = "ingress_ended"
_ENDED_STATUSES = (
    IngressState.Status.ENDPOINT_INACTIVE,
    IngressState.Status.ENDPOINT_COMPLETE,
    IngressState.Status.ENDPOINT_ERROR,
)


def ingress_event_name(previous: int, current: int) -> str | None:
    """The webhook a status change sends, or None (BUFFERING and unchanged statuses are silent)."""
    if previous == current:
        return None
    if current == IngressState.Status.ENDPOINT_PUBLISHING:
        return INGRESS_STARTED
    if current in _ENDED_STATUSES:
        return INGRESS_ENDED
    return None


def ingress_event(name: str, info: IngressInfo, now: float | None = None) -> WebhookEvent:
    # livekit-server v1.13.5 sets only event, ingress_info, id and created_at (seconds) for ingress events.
    event = WebhookEvent(event=name, id=new_event_id(), created_at=int(time.time() if now is None else now))
    event.ingress_info.CopyFrom(info)
    return event


def sign(body: bytes, api_key: str, api_secret: str, now: float | None = None) -> str:
    """The bare JWT a receiver checks: issuer = key, 5 min validity, sha256 claim over the exact body."""
    issued = int(time.time() if now is None else now)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    claims = {"iss": api_key, "nbf": issued, "exp": issued + TOKEN_TTL_S, "sha256": digest}
    return jwt.encode(claims, api_secret, algorithm="HS256")


def event_key(event: WebhookEvent) -> str:
    """Events about one resource are delivered in order; different resources do not wait for each other."""
    if event.HasField("ingress_info"):
        return event.ingress_info.ingress_id
    if event.HasField("room"):
        return event.room.name
    return "default"


@dataclass
class DeliveryPolicy:
    retry_wait_min_s: float = 1.0
    retry_wait_max_s: float = 30.0
    max_retries: int = 4
    max_age_s: float = 30.0
    max_depth: int = 200
    attempt_timeout_s: float = 10.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.retry_wait_max_s, self.retry_wait_min_s * (2**attempt)))


@dataclass
class _Queued:
    event: WebhookEvent
    queued_at: float


@dataclass
class _ResourceQueue:
    items: list[_Queued] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookNotifier:
    """Posts webhook events to every configured URL, each with its own ordered queues per resource."""

    def __init__(
        self,
        urls: list[str],
        api_key: str,
        api_secret: str,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if urls and not (api_key and api_secret):
            raise ValueError("webhook urls need an api key and secret to sign with")
        self.urls = list(urls)
        self.api_key = api_key
        self.api_secret = api_secret
        self.policy = policy or DeliveryPolicy()
        self.stats = DeliveryStats()
        self._clock = clock
        self._queues: dict[tuple[str, str], _ResourceQueue] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def notify(self, event: WebhookEvent) -> None:
        """Queue ``event`` for every URL and return at once."""
        if self._closed or not self.urls:
            return
        if not event.id:
            event.id = new_event_id()
        if not event.created_at:
            event.created_at = int(time.time())
        key = event_key(event)
        for url in self.urls:
            queue = self._queues.setdefault((url, key), _ResourceQueue())
            if len(queue.items) >= self.policy.max_depth:
                self.stats.dropped += 1
                log.warning("dropped webhook %s for %s: queue full", event.event, url)
                continue
            queue.items.append(_Queued(event, self._clock()))
            if queue.task is None or queue.task.done():
                queue.task = asyncio.get_running_loop().create_task(self._drain(url, key, queue))

    async def _drain(self, url: str, key: str, queue: _ResourceQueue) -> None:
        try:
            while queue.items and not self._closed:
                item = queue.items.pop(0)
                age = self._clock() - item.queued_at
                if age > self.policy.max_age_s:
                    self.stats.dropped += 1
                    log.info("dropped webhook %s for %s: %.1f s old", item.event.event, url, age)
                    continue
                await self._deliver(url, item.event)
        finally:
            if not queue.items and self._queues.get((url, key)) is queue:
                del self._queues[(url, key)]

    async def _post(self, url: str, body: bytes) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Authorization": sign(body, self.api_key, self.api_secret),
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
        }
        timeout = aiohttp.ClientTimeout(total=self.policy.attempt_timeout_s)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as response:
            await response.read()
            return response.status

    async def _deliver(self, url: str, event: WebhookEvent) -> None:
        body = webhook_json(event)
        for attempt in range(self.policy.max_retries + 1):
            try:
                status = await self._post(url, body)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                # As retryablehttp: only transport failures, 429 and 5xx are worth another try.
                if status != 429 and status < 500:
                    self.stats.sent += 1
                    log.info("sent webhook %s %s to %s: %d", event.event, event.id, url, status)
                    return
                reason = f"HTTP {status}"
            if attempt == self.policy.max_retries or self._closed:
                break
            wait = self.policy.backoff(attempt)
            log.debug("webhook %s to %s failed (%s), retrying in %.1f s", event.event, url, reason, wait)
            await asyncio.sleep(wait)
        self.stats.failed += 1
        log.warning("failed to send webhook %s %s to %s: %s", event.event, event.id, url, reason)

    def pending(self) -> int:
        return sum(
            len(queue.items) + (1 if queue.task and not queue.task.done() else 0) for queue in self._queues.values()
        )

    async def close(self, drain_timeout_s: float = 2.0) -> None:
        """Give queued events a moment to go out, then stop."""
        tasks = [queue.task for queue in self._queues.values() if queue.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=drain_timeout_s)
        self._closed = True
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
