"""A real HTTP webhook receiver for tests: verifies every POST with livekit-api's WebhookReceiver, as users do."""

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web
from livekit import api
from livekit.protocol.webhook import WebhookEvent


@dataclass
class Received:
    event: WebhookEvent
    body: str
    headers: dict[str, str]


@dataclass
class WebhookSink:
    port: int
    api_key: str = "devkey"
    api_secret: str = "secret"
    # Answer this many requests with this status before accepting (a receiver that errors, then recovers).
    fail_first: int = 0
    fail_status: int = 503
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return web.Response(status=self.fail_status)
        body = await request.text()
        receiver = api.WebhookReceiver(api.TokenVerifier(self.api_key, self.api_secret))
        try:
            event = receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception as exc:
            self.refused.append(str(exc))
            return web.Response(status=401)
        self.received.append(Received(event, body, dict(request.headers)))
        self._arrived.set()
        return web.Response(text="ok")

    async def start(self) -> "WebhookSink":
        app = web.Application()
        app.router.add_post("/webhook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(self.received)} of {count} webhooks within {timeout} s: {self.received}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return self.received
