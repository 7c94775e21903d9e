"""livekit-server's signal websocket as one client sees it, with the server's UDP candidates pointing at a relay.

To put a slow link (``udp_relay.Bottleneck``) between pyingress's room publisher and livekit-server, and only there,
pyingress is given this proxy as its ``ws_url``. The proxy passes every ``/rtc`` message through unchanged except
the ICE candidates of the publisher connection — in the offer and answer SDP and in trickles — where the first UDP
one each way is made to name the relay (the server's: the relay's front, the client's: the back socket the relay
forwards to the client's own address, ``LossyRelay.forward_to``) and the other UDP ones are left out; TCP ones stay
(aioice cannot use them). The client's candidate leaves its offer and follows the server's answer as a trickle, as a
browser's does (the packet drops once blamed on it had another cause: docs/chaos.md). Neither
side knows an address of the other but the relay's, so no pair of candidates can bypass it, while viewers and every
other client talk to livekit-server directly. Nothing else of the room is touched: the server it joins, the tracks
it publishes, the viewers are real.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable

import aiohttp
from aiohttp import web
from livekit.protocol import rtc

from tests.harness.ports import free_port


def candidate_to_relay(candidate: str, relay: tuple[str, int]) -> str:
    """A UDP ``candidate:…`` line naming ``relay`` instead of the server; other transports unchanged."""
    parts = candidate.split()
    if len(parts) < 8 or parts[2].lower() != "udp":
        return candidate
    parts[4], parts[5] = relay[0], str(relay[1])
    return " ".join(parts)


def _trickle(candidate: str, mid: str) -> bytes:
    """The client's candidate as the trickle a browser would send."""
    init = {"candidate": candidate, "sdpMid": mid, "sdpMLineIndex": 0, "usernameFragment": None}
    trickle = rtc.TrickleRequest(candidateInit=json.dumps(init), target=rtc.SignalTarget.PUBLISHER)
    return rtc.SignalRequest(trickle=trickle).SerializeToString()


def _is_answer(data: bytes) -> bool:
    response = rtc.SignalResponse()
    response.ParseFromString(data)
    return response.WhichOneof("message") == "answer"


class CandidateRewritingProxy:
    def __init__(
        self,
        upstream_ws_url: str,
        relay: tuple[str, int],
        relay_back: tuple[str, int] | Callable[[tuple[str, int]], tuple[str, int]],
    ) -> None:
        """``relay``: where the client is to send (the relay's front); ``relay_back``: where the server is to, or a
        function from the client's own address to it (``LossyRelay.forward_to``)."""
        self.upstream = upstream_ws_url.rstrip("/")
        self.relay = relay
        self.relay_back = relay_back
        self.port = free_port()
        self.rewritten = 0
        self.candidates: list[str] = []  # what was done to each candidate, for a failing test's message
        self._runner: web.AppRunner | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> "CandidateRewritingProxy":
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._connect)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        async with aiohttp.ClientSession() as http:
            try:
                upstream = await http.ws_connect(
                    self.upstream + request.path_qs, heartbeat=None, max_msg_size=16 * 1024 * 1024
                )
            except aiohttp.WSServerHandshakeError as exc:
                return web.Response(status=exc.status, text=exc.message)
            client = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
            await client.prepare(request)
            given: dict[bool, bool] = {}  # per connection and way: a UDP candidate was passed on
            held: list[bytes] = []  # the client's candidate from its offer, trickled once the answer is back
            up = asyncio.create_task(self._pump(client, upstream, given, held, from_server=False))
            down = asyncio.create_task(self._pump(upstream, client, given, held, from_server=True, back=upstream))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            await upstream.close()
            await client.close()
            return client

    async def _pump(
        self,
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        given: dict[bool, bool],
        held: list[bytes],
        *,
        from_server: bool,
        back: aiohttp.ClientWebSocketResponse | None = None,
    ) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.BINARY:
                data = self._rewrite(message.data, given, held, from_server)
                if data is not None:
                    await sink.send_bytes(data)
                if back is not None and held and _is_answer(message.data):
                    for trickle in held:
                        await back.send_bytes(trickle)
                    held.clear()
            elif message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            else:
                break
        with contextlib.suppress(ConnectionError):
            await sink.close()

    def _rewrite(self, data: bytes, given: dict[bool, bool], held: list[bytes], from_server: bool) -> bytes | None:
        message: rtc.SignalResponse | rtc.SignalRequest = rtc.SignalResponse() if from_server else rtc.SignalRequest()
        message.ParseFromString(data)
        kind = message.WhichOneof("message")
        if kind in ("answer", "offer") and kind == ("answer" if from_server else "offer"):
            description = getattr(message, kind)
            lines = []
            mid = ""
            for line in description.sdp.split("\r\n"):
                if line.startswith("a=mid:") and not mid:
                    mid = line[6:]
                if line.startswith("a=candidate:"):
                    rewritten = self._candidate(line[2:], given, from_server)
                    if rewritten is None:
                        continue
                    if not from_server and rewritten != line[2:]:
                        held.append(_trickle(rewritten, mid))
                        continue
                    line = "a=" + rewritten
                lines.append(line)
            description.sdp = "\r\n".join(lines)
        elif kind == "trickle" and message.trickle.target == rtc.SignalTarget.PUBLISHER:
            init = json.loads(message.trickle.candidateInit)
            rewritten = self._candidate(init.get("candidate", ""), given, from_server)
            if rewritten is None:
                return None
            init["candidate"] = rewritten
            message.trickle.candidateInit = json.dumps(init)
        else:
            return data
        return message.SerializeToString()

    def _relay_for(self, candidate: str, from_server: bool) -> tuple[str, int]:
        """The address to put in ``candidate`` (a UDP one): the relay's front for the server's, for the client's
        the back socket that leads to the client's own address."""
        if from_server:
            return self.relay
        if callable(self.relay_back):
            parts = candidate.split()
            return self.relay_back((parts[4], int(parts[5])))
        return self.relay_back

    def _candidate(self, candidate: str, given: dict[bool, bool], from_server: bool) -> str | None:
        way = "server" if from_server else "client"
        if candidate_to_relay(candidate, ("", 0)) == candidate:
            self.candidates.append(f"{way} kept {candidate}")
            return candidate  # not UDP (or end-of-candidates)
        if given.get(from_server):
            self.candidates.append(f"{way} dropped {candidate}")
            return None
        rewritten = candidate_to_relay(candidate, self._relay_for(candidate, from_server))
        self.candidates.append(f"{way} {candidate} -> {rewritten}")
        given[from_server] = True
        self.rewritten += 1
        return rewritten
