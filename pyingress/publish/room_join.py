"""One join of a room: a signal connection, the publisher peer connection, and the handshake that makes them publish.

The handshake is protocol.md §5.3 for a publish-only participant: an AddTrackRequest per track and wait for every
TrackPublished; our offer, our candidates trickled, the server's answer; wait for the peer connection to connect.
Every step gives up as soon as the join breaks (signal lost, server left or refused), so a dead server costs one
step, not the whole join timeout.  Which join is current, and when to make another, is ``room_publisher.py``'s.
"""

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from aiortc import RTCIceServer
from livekit.protocol import rtc

from pyingress.publish.livekit import signal as sig
from pyingress.publish.livekit.token import RESOURCE_ID_ATTRIBUTE
from pyingress.publish.publication import AudioTrackPlan, PublisherOptions, VideoTrackPlan, add_track_requests
from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, is_loopback_url
from pyingress.webrtc.peer import PublisherPeer

logger = logging.getLogger(__name__)
T = TypeVar("T")


class JoinRefused(Exception):
    """The server refused the join in a way retrying cannot fix (bad token, no permission)."""


async def connect_signal(ws_url: str, token: str, timeout: float) -> sig.SignalClient:
    """The joined signal connection; ``JoinRefused`` when the server turns the token down."""
    try:
        return await sig.SignalClient.connect(ws_url, token, timeout=timeout)
    except sig.SignalClosed as exc:
        if exc.status in (401, 403):
            raise JoinRefused(exc.reason) from None
        raise


def ice_setup(
    ws_url: str, options: PublisherOptions, joined: sig.Joined
) -> tuple[list[RTCIceServer], tuple[str, ...] | None]:
    """(ICE servers, host addresses to gather from) for a join: a loopback room server is met on loopback only and
    needs no STUN/TURN, unless the options say otherwise."""
    loopback = is_loopback_url(ws_url)
    hosts = options.host_addresses
    if hosts is None and loopback:
        hosts = LOOPBACK_ADDRESSES
    use_servers = options.use_server_ice_servers
    if use_servers is None:
        use_servers = not loopback
    servers = (
        [RTCIceServer(list(s.urls), s.username or None, s.credential or None) for s in joined.ice_servers]
        if use_servers
        else []
    )
    return servers, hosts


@dataclass
class Join:
    """One join: its signal connection, peer connection and the futures of its handshake."""

    generation: int
    signal: sig.SignalClient
    peer: PublisherPeer
    joined: sig.Joined
    published: dict[str, "asyncio.Future[sig.TrackPublished]"] = field(default_factory=dict)
    answer: "asyncio.Future[sig.SdpAnswer] | None" = None
    dispatcher: "asyncio.Task[None] | None" = None
    ready: bool = False
    audio_sid: str = ""
    video_sid: str = ""
    broken: asyncio.Event = field(default_factory=asyncio.Event)
    broken_reason: str = ""
    refused: bool = False  # the server refused a request of the handshake: retrying will not help

    def break_handshake(self, reason: str, refused: bool = False) -> None:
        if not self.broken.is_set():
            self.broken_reason, self.refused = reason, refused
            self.broken.set()

    async def guard(self, step: "Awaitable[T]") -> T:
        """Await one handshake step, or fail as soon as the join breaks (signal lost, server left or refused)."""
        task = asyncio.ensure_future(step)
        broken = asyncio.ensure_future(self.broken.wait())
        try:
            await asyncio.wait((task, broken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if self.refused:
                raise JoinRefused(self.broken_reason)
            raise ConnectionError(self.broken_reason)
        return task.result()

    async def publish(
        self, audio: AudioTrackPlan | None, video: VideoTrackPlan | None, resource_id: str, timeout: float
    ) -> None:
        """The handshake, until media can flow; the join is closed (with a leave) when it fails.

        Signal events must reach ``on_signal`` meanwhile (the caller's ``dispatcher`` task).
        """
        signal, peer = self.signal, self.peer
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                for request in add_track_requests(audio, peer.audio_cid, video, peer.video_cid):
                    self.published[request.cid] = loop.create_future()
                    await signal.send(sig.encode_add_track(request))
                published = await self.guard(asyncio.gather(*self.published.values()))
                for event in published:
                    if event.cid == peer.audio_cid:
                        self.audio_sid = event.track_sid
                    elif event.cid == peer.video_cid:
                        self.video_sid = event.track_sid
                self.answer = loop.create_future()
                await signal.send(sig.encode_offer(await peer.create_offer(), 1))
                candidates = peer.local_candidates()
                for n, (candidate, sdp_mid, index) in enumerate(candidates, 1):
                    await signal.send(sig.encode_trickle(candidate, sdp_mid, index, final=n == len(candidates)))
                answer = await self.guard(self.answer)
                await peer.set_answer(answer.sdp)
                connected = asyncio.ensure_future(peer.connected.wait())
                failed = asyncio.ensure_future(peer.failed.wait())
                await asyncio.wait((connected, failed), return_when=asyncio.FIRST_COMPLETED)
                for waiter in (connected, failed):
                    waiter.cancel()
                if not peer.connected.is_set():
                    raise ConnectionError("publisher peer connection failed")
            if resource_id:
                await signal.send(sig.encode_update_attributes({RESOURCE_ID_ATTRIBUTE: resource_id}))
        except BaseException:
            await self.close(leave=True)
            raise
        self.ready = True

    async def on_signal(self, event: sig.SignalEvent) -> bool:
        """Handle an event about this join's own handshake or transport; False: one for the publisher."""
        if isinstance(event, sig.TrackPublished):
            future = self.published.get(event.cid)
            if future is not None and not future.done():
                future.set_result(event)
        elif isinstance(event, sig.SdpAnswer):
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(event)
        elif isinstance(event, sig.IceCandidate):
            if event.target == sig.TARGET_PUBLISHER:
                await self.peer.add_remote_candidate(event.candidate, event.sdp_mid, event.sdp_mline_index)
        elif isinstance(event, sig.RequestRefused):
            self._on_refused(event)
        elif isinstance(event, sig.SdpOffer):
            logger.warning("ignoring a subscriber offer: this participant does not subscribe")
        else:
            return False
        return True

    def _on_refused(self, event: sig.RequestRefused) -> None:
        if event.reason == rtc.RequestResponse.Reason.QUEUED:
            return  # an add_track waiting behind another with the same cid: an answer will follow
        logger.warning("server refused %s: %s %s", event.request or "a request", event.reason, event.message)
        if event.request == "add_track" and not self.ready:
            names = {value: name for name, value in rtc.RequestResponse.Reason.items()}
            reason = names.get(event.reason, str(event.reason))
            self.break_handshake(f"server refused the track: {reason} {event.message}".strip(), refused=True)

    async def close(self, leave: bool) -> None:
        self.ready = False
        if self.dispatcher is not None and self.dispatcher is not asyncio.current_task():
            self.dispatcher.cancel()
            await asyncio.gather(self.dispatcher, return_exceptions=True)
        await self.signal.close(leave=leave)
        await self.peer.close()
