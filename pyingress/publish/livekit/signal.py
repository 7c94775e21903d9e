"""LiveKit's signal protocol for a publish-only participant: a sans-IO core and the websocket client around it.

Framing (protocol.md §5.1): every websocket *binary* message carries one serialized ``SignalRequest`` (to the
server) or ``SignalResponse`` (from it), field numbers as in §5.2 (livekit-protocol's ``livekit.protocol.rtc``).
``decode_response`` turns one message into one typed event and raises only ``SignalProtocolError``;
``SignalConnection`` adds the little state a client keeps (join seen, ping schedule, pong deadline) with time passed
in.  ``SignalClient`` is the asyncio shell: an aiohttp websocket, a reader, a ping task.
"""

import asyncio
import base64
import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import aiohttp
from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

logger = logging.getLogger(__name__)

# The protocol version livekit-server v1.13.5 and the Go SDK speak (protocol.md §5.1).
PROTOCOL_VERSION = 17
SDK_NAME = "python"
SDK_VERSION = "pyingress"

# SignalTarget (TrickleRequest.target)
TARGET_PUBLISHER = rtc.SignalTarget.PUBLISHER
TARGET_SUBSCRIBER = rtc.SignalTarget.SUBSCRIBER


class SignalProtocolError(Exception):
    """A message from the server that is not a well-formed SignalResponse (or a field in it that is unusable)."""


# ---------------------------------------------------------------------------------------------------------------
# Events: what the server told us, one per SignalResponse.


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class Joined:
    room_sid: str
    room_name: str
    participant_sid: str
    identity: str
    participant_kind: int  # models.ParticipantInfo.Kind
    ice_servers: tuple[IceServer, ...]
    subscriber_primary: bool
    ping_interval: float  # seconds; 0 when the server gives none
    ping_timeout: float
    server_version: str
    others: tuple[str, ...] = ()  # sids of the other (visible) participants in the room at the join


@dataclass(frozen=True)
class Reconnected:
    """ReconnectResponse: the server took us back (resume) on the same participant."""

    ice_servers: tuple[IceServer, ...]


@dataclass(frozen=True)
class SdpAnswer:
    sdp: str
    id: int


@dataclass(frozen=True)
class SdpOffer:
    sdp: str
    id: int


@dataclass(frozen=True)
class IceCandidate:
    """A trickled remote candidate: the SDP attribute value ("candidate:…"), or "" for end-of-candidates."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    target: int
    final: bool


@dataclass(frozen=True)
class TrackPublished:
    cid: str
    track_sid: str
    track_type: int  # models.TrackType
    mime_type: str
    simulcast: bool
    codec_mime_types: tuple[str, ...]
    layer_qualities: tuple[int, ...]


@dataclass(frozen=True)
class TrackUnpublished:
    track_sid: str


@dataclass(frozen=True)
class TrackMuted:
    """The server (an admin) muted or unmuted one of our tracks."""

    track_sid: str
    muted: bool


@dataclass(frozen=True)
class SubscribedQualities:
    """Which layers of a published video track someone subscribes to, per codec (dynacast, §5.3 step 7).

    ``enabled`` maps a codec as the server names it (a mime type like "video/h264", or "" for the legacy
    codec-less list) to the qualities (models.VideoQuality) with at least one subscriber.
    """

    track_sid: str
    enabled: tuple[tuple[str, frozenset[int]], ...]

    def for_codec(self, codec: str) -> frozenset[int] | None:
        """Enabled qualities for ``codec`` ("h264", "video/H264" …), falling back to the codec-less list."""
        wanted = codec.lower().removeprefix("video/")
        fallback: frozenset[int] | None = None
        for name, qualities in self.enabled:
            normalised = name.lower().removeprefix("video/")
            if normalised == wanted:
                return qualities
            if not normalised:
                fallback = qualities
        return fallback


@dataclass(frozen=True)
class ParticipantsChanged:
    """ParticipantUpdate: participants that joined or changed (``present``) and those that left (``gone``), by sid.
    Hidden participants (egress, recorders) are never in it."""

    present: tuple[str, ...]
    gone: tuple[str, ...]


@dataclass(frozen=True)
class Left:
    """The server asks us to leave (LeaveRequest): disconnect for good, resume, or reconnect from scratch."""

    reason: int  # models.DisconnectReason
    action: int  # rtc.LeaveRequest.Action: DISCONNECT=0, RESUME=1, RECONNECT=2
    can_reconnect: bool

    @property
    def reason_name(self) -> str:
        return models.DisconnectReason.Name(self.reason) if self.reason in _DISCONNECT_REASONS else str(self.reason)


@dataclass(frozen=True)
class Pong:
    last_ping_timestamp: int  # ms, as we sent it
    timestamp: int  # ms, server clock (0 for the legacy pong)


@dataclass(frozen=True)
class TokenRefreshed:
    token: str


@dataclass(frozen=True)
class RequestRefused:
    """RequestResponse with a reason other than OK (e.g. NOT_ALLOWED, LIMIT_EXCEEDED, QUEUED)."""

    request_id: int
    reason: int  # rtc.RequestResponse.Reason
    message: str
    request: str = ""  # which request it answers ("add_track", "update_metadata" …), "" when not said


@dataclass(frozen=True)
class OtherMessage:
    """A response a publish-only participant does not act on (speakers, connection quality …)."""

    kind: str


SignalEvent = (
    Joined
    | ParticipantsChanged
    | Reconnected
    | SdpAnswer
    | SdpOffer
    | IceCandidate
    | TrackPublished
    | TrackUnpublished
    | TrackMuted
    | SubscribedQualities
    | Left
    | Pong
    | TokenRefreshed
    | RequestRefused
    | OtherMessage
)

_DISCONNECT_REASONS = set(models.DisconnectReason.values())
_REQUEST_OK = rtc.RequestResponse.Reason.OK


def _ice_servers(servers: Sequence[rtc.ICEServer]) -> tuple[IceServer, ...]:
    return tuple(IceServer(tuple(s.urls), s.username, s.credential) for s in servers)


def _candidate(trickle: rtc.TrickleRequest) -> IceCandidate:
    # candidateInit is a JSON string of an RTCIceCandidateInit (protocol.md §5.2).
    try:
        init = json.loads(trickle.candidateInit) if trickle.candidateInit else {}
    except (ValueError, RecursionError) as exc:
        raise SignalProtocolError(f"trickle candidate is not JSON: {exc}") from None
    if not isinstance(init, dict):
        raise SignalProtocolError("trickle candidate is not a JSON object")
    candidate = init.get("candidate") or ""
    sdp_mid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    if not isinstance(candidate, str) or not isinstance(sdp_mid, str | None):
        raise SignalProtocolError("trickle candidate has fields of the wrong type")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise SignalProtocolError("trickle candidate has a bad sdpMLineIndex")
    return IceCandidate(candidate, sdp_mid, index, trickle.target, trickle.final)


def _qualities(update: rtc.SubscribedQualityUpdate) -> SubscribedQualities:
    enabled: list[tuple[str, frozenset[int]]] = [
        (codec.codec, frozenset(q.quality for q in codec.qualities if q.enabled)) for codec in update.subscribed_codecs
    ]
    if not enabled and update.subscribed_qualities:
        enabled.append(("", frozenset(q.quality for q in update.subscribed_qualities if q.enabled)))
    return SubscribedQualities(update.track_sid, tuple(enabled))


def _published(response: rtc.TrackPublishedResponse) -> TrackPublished:
    track = response.track
    codecs = tuple(c.mime_type for c in track.codecs)
    layers = tuple(layer.quality for c in track.codecs[:1] for layer in c.layers) or tuple(
        layer.quality for layer in track.layers
    )
    return TrackPublished(
        response.cid, track.sid, track.type, track.mime_type, track.simulcast, codecs, tuple(sorted(layers))
    )


def decode_response(data: bytes) -> SignalEvent:
    """One websocket binary message from the server as a typed event."""
    response = rtc.SignalResponse()
    try:
        response.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise SignalProtocolError(f"not a SignalResponse: {exc}") from None
    kind = response.WhichOneof("message")
    if kind is None:
        raise SignalProtocolError("empty SignalResponse")
    if kind == "join":
        join = response.join
        return Joined(
            room_sid=join.room.sid,
            room_name=join.room.name,
            participant_sid=join.participant.sid,
            identity=join.participant.identity,
            participant_kind=join.participant.kind,
            ice_servers=_ice_servers(join.ice_servers),
            subscriber_primary=join.subscriber_primary,
            ping_interval=float(join.ping_interval),
            ping_timeout=float(join.ping_timeout),
            server_version=join.server_version,
            others=tuple(p.sid for p in join.other_participants),
        )
    if kind == "reconnect":
        return Reconnected(_ice_servers(response.reconnect.ice_servers))
    if kind == "answer":
        return SdpAnswer(response.answer.sdp, response.answer.id)
    if kind == "offer":
        return SdpOffer(response.offer.sdp, response.offer.id)
    if kind == "trickle":
        return _candidate(response.trickle)
    if kind == "track_published":
        return _published(response.track_published)
    if kind == "track_unpublished":
        return TrackUnpublished(response.track_unpublished.track_sid)
    if kind == "mute":
        return TrackMuted(response.mute.sid, response.mute.muted)
    if kind == "subscribed_quality_update":
        return _qualities(response.subscribed_quality_update)
    if kind == "update":
        gone_state = models.ParticipantInfo.State.DISCONNECTED
        people = response.update.participants
        return ParticipantsChanged(
            tuple(p.sid for p in people if p.state != gone_state), tuple(p.sid for p in people if p.state == gone_state)
        )
    if kind == "leave":
        leave = response.leave
        return Left(leave.reason, leave.action, leave.can_reconnect)
    if kind == "pong_resp":
        return Pong(response.pong_resp.last_ping_timestamp, response.pong_resp.timestamp)
    if kind == "pong":
        return Pong(response.pong, 0)
    if kind == "refresh_token":
        return TokenRefreshed(response.refresh_token)
    if kind == "request_response" and response.request_response.reason != _REQUEST_OK:
        rr = response.request_response
        return RequestRefused(rr.request_id, rr.reason, rr.message, rr.WhichOneof("request") or "")
    return OtherMessage(kind)


# ---------------------------------------------------------------------------------------------------------------
# Requests: what we tell the server, each as the bytes of one websocket binary message.


def _encode(**message: object) -> bytes:
    return rtc.SignalRequest(**message).SerializeToString()  # type: ignore[arg-type]


def encode_offer(sdp: str, offer_id: int = 0) -> bytes:
    return _encode(offer=rtc.SessionDescription(type="offer", sdp=sdp, id=offer_id))


def encode_answer(sdp: str, answer_id: int = 0) -> bytes:
    return _encode(answer=rtc.SessionDescription(type="answer", sdp=sdp, id=answer_id))


def encode_trickle(
    candidate: str,
    sdp_mid: str | None,
    sdp_mline_index: int | None,
    *,
    target: int = TARGET_PUBLISHER,
    final: bool = False,
) -> bytes:
    init: dict[str, object] = {"candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": sdp_mline_index}
    signal_target = cast(rtc.SignalTarget, target)
    return _encode(trickle=rtc.TrickleRequest(candidateInit=json.dumps(init), target=signal_target, final=final))


def encode_add_track(request: rtc.AddTrackRequest) -> bytes:
    return _encode(add_track=request)


def encode_mute(track_sid: str, muted: bool) -> bytes:
    return _encode(mute=rtc.MuteTrackRequest(sid=track_sid, muted=muted))


def encode_ping(timestamp_ms: int, rtt_ms: int = 0) -> bytes:
    return _encode(ping_req=rtc.Ping(timestamp=timestamp_ms, rtt=rtt_ms))


def encode_update_attributes(attributes: Mapping[str, str], request_id: int = 0) -> bytes:
    return _encode(update_metadata=rtc.UpdateParticipantMetadata(attributes=dict(attributes), request_id=request_id))


def encode_leave(reason: int = models.DisconnectReason.CLIENT_INITIATED) -> bytes:
    disconnect_reason = cast(models.DisconnectReason, reason)
    return _encode(leave=rtc.LeaveRequest(reason=disconnect_reason, action=rtc.LeaveRequest.Action.DISCONNECT))


def rtc_url(ws_url: str, token: str, *, reconnect_sid: str = "", attributes: Mapping[str, str] | None = None) -> str:
    """The ``/rtc`` websocket URL for a publish-only participant (protocol.md §5.1, §5.3 step 1).

    ``ws_url`` may be given as ws(s):// or http(s)://, with or without a path prefix.
    """
    parts = urllib.parse.urlsplit(ws_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a websocket URL: {ws_url!r}")
    query: list[tuple[str, str]] = [
        ("access_token", token),
        ("auto_subscribe", "0"),
        ("protocol", str(PROTOCOL_VERSION)),
        ("sdk", SDK_NAME),
        ("version", SDK_VERSION),
    ]
    if reconnect_sid:
        query += [("reconnect", "1"), ("sid", reconnect_sid)]
    if attributes:
        encoded = base64.urlsafe_b64encode(json.dumps(dict(attributes)).encode()).decode()
        query.append(("attributes", encoded))
    path = parts.path.rstrip("/") + "/rtc"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))


# ---------------------------------------------------------------------------------------------------------------
# The client's state, without IO.


@dataclass
class SignalConnection:
    """The bookkeeping of one signal connection: join seen, when to ping, when the server counts as gone.

    Feed every received message to ``receive_data``; ask ``ping_due(now)`` for the next ping to send and
    ``timed_out(now)`` whether the server has been silent longer than its own ``ping_timeout``.
    """

    joined: Joined | None = None
    reconnected: Reconnected | None = None
    ping_interval: float = 5.0
    ping_timeout: float = 15.0
    rtt_ms: int = 0
    _last_received: float = 0.0
    _next_ping: float = 0.0
    _started: bool = field(default=False, repr=False)

    def start(self, now: float) -> None:
        self._last_received = now
        self._next_ping = now + self.ping_interval
        self._started = True

    def receive_data(self, data: bytes, now: float) -> SignalEvent:
        event = decode_response(data)
        self._last_received = now
        if isinstance(event, Joined):
            self.joined = event
            if event.ping_interval > 0:
                self.ping_interval = event.ping_interval
            if event.ping_timeout > 0:
                self.ping_timeout = event.ping_timeout
            self._next_ping = now + self.ping_interval
        elif isinstance(event, Reconnected):
            self.reconnected = event
        elif isinstance(event, Pong) and event.last_ping_timestamp > 0:
            self.rtt_ms = max(0, int(now * 1000) - event.last_ping_timestamp)
        return event

    def ping_due(self, now: float) -> bytes | None:
        """The ping to send now, if one is due (ping_req with our clock in ms, as the server echoes it back)."""
        if not self._started or now < self._next_ping:
            return None
        self._next_ping = now + self.ping_interval
        return encode_ping(int(now * 1000), self.rtt_ms)

    def seconds_to_next_ping(self, now: float) -> float:
        return max(0.0, self._next_ping - now)

    def timed_out(self, now: float) -> bool:
        return self._started and now - self._last_received > self.ping_timeout


# ---------------------------------------------------------------------------------------------------------------
# The asyncio shell.


class SignalClosed(Exception):
    """The signal connection ended; ``reason`` says how (server closed, ping timeout, network error).

    ``status`` is the HTTP status when the server refused the websocket upgrade (401 bad token, 404 …).
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class SignalClient:
    """One websocket to ``/rtc``: ``connect`` returns after the join (or reconnect) response; then ``events()``.

    The client pings on the server's interval, and ends ``events()`` with ``SignalClosed`` when the socket closes
    or the server stays silent past its ping timeout.  Sends are serialised by aiohttp; call them from the loop.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        state: SignalConnection,
        owns_session: bool,
    ) -> None:
        self._session = session
        self._ws = ws
        self.state = state
        self._owns_session = owns_session
        self._events: asyncio.Queue[SignalEvent | SignalClosed] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="signal-reader")
        self._pinger = asyncio.create_task(self._ping(), name="signal-ping")
        self._closed_reason: str | None = None

    @classmethod
    async def connect(
        cls,
        ws_url: str,
        token: str,
        *,
        reconnect_sid: str = "",
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> "SignalClient":
        """Open the websocket and wait for JoinResponse (or ReconnectResponse when ``reconnect_sid`` is given).

        Raises ``SignalClosed`` when the server refuses (HTTP status and body in the reason), leaves at once, or
        does not answer within ``timeout`` seconds.
        """
        owns = session is None
        http = session or aiohttp.ClientSession()
        url = rtc_url(ws_url, token, reconnect_sid=reconnect_sid)
        state = SignalConnection()
        try:
            async with asyncio.timeout(timeout):
                ws = await http.ws_connect(url, heartbeat=None, autoping=True, max_msg_size=16 * 1024 * 1024)
                state.start(time.monotonic())
                first = await cls._first_event(ws, state)
        except aiohttp.WSServerHandshakeError as exc:
            await _close_session(http, owns)
            raise SignalClosed(f"signal connection refused: {exc.status} {exc.message}", exc.status) from None
        except (aiohttp.ClientError, OSError, TimeoutError, SignalProtocolError) as exc:
            await _close_session(http, owns)
            raise SignalClosed(f"signal connection failed: {type(exc).__name__}: {exc}") from None
        except asyncio.CancelledError:  # given up by the caller (a session that ended while joining)
            await _close_session(http, owns)
            raise
        if isinstance(first, Left):
            await ws.close()
            await _close_session(http, owns)
            raise SignalClosed(f"server left at once: {first.reason_name}")
        client = cls(http, ws, state, owns)
        return client

    @staticmethod
    async def _first_event(ws: aiohttp.ClientWebSocketResponse, state: SignalConnection) -> SignalEvent:
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise SignalProtocolError(f"unexpected websocket message {message.type.name}: {message.data!r}")
            event = state.receive_data(message.data, time.monotonic())
            if isinstance(event, Joined | Reconnected | Left):
                return event
            # anything before the join (none expected) is of no use to a publisher

    @property
    def joined(self) -> Joined | None:
        return self.state.joined

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def events(self) -> AsyncIterator[SignalEvent]:
        """Events in arrival order; raises ``SignalClosed`` once the connection is gone."""
        while True:
            item = await self._events.get()
            if isinstance(item, SignalClosed):
                self._events.put_nowait(item)  # later readers see the end too
                raise item
            yield item

    async def send(self, data: bytes) -> None:
        if self._closed_reason is not None:
            raise SignalClosed(self._closed_reason)
        try:
            await self._ws.send_bytes(data)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            self._finish(f"send failed: {exc}")
            raise SignalClosed(f"send failed: {exc}") from None

    async def close(self, leave: bool = True) -> None:
        """Send ``leave`` (CLIENT_INITIATED) when asked and still open, then close the socket and tasks."""
        if leave and self._closed_reason is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.send_bytes(encode_leave()), 2.0)
        self._finish("closed by us")
        for task in (self._pinger, self._reader):
            task.cancel()
        await asyncio.gather(self._reader, self._pinger, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._ws.close()
        await _close_session(self._session, self._owns_session)

    def _finish(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            self._events.put_nowait(SignalClosed(reason))

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    try:
                        event = self.state.receive_data(message.data, time.monotonic())
                    except SignalProtocolError as exc:
                        logger.warning("ignoring a malformed signal message: %s", exc)
                        continue
                    self._events.put_nowait(event)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
            self._finish(f"signal connection closed by the server (code {self._ws.close_code})")
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._finish(f"signal connection lost: {exc}")

    async def _ping(self) -> None:
        while self._closed_reason is None:
            now = time.monotonic()
            if self.state.timed_out(now):
                self._finish(f"no message from the server for {self.state.ping_timeout:.0f} s")
                with contextlib.suppress(Exception):
                    await self._ws.close()
                return
            ping = self.state.ping_due(now)
            if ping is not None:
                with contextlib.suppress(SignalClosed):
                    await self.send(ping)
            await asyncio.sleep(min(1.0, max(0.05, self.state.seconds_to_next_ping(time.monotonic()))))


async def _close_session(session: aiohttp.ClientSession, owned: bool) -> None:
    if owned:
        with contextlib.suppress(Exception):
            await session.close()
