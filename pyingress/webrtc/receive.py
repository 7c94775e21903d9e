"""Receiving RTP over aiortc's transports without aiortc's receivers: ICE, DTLS and SRTP from aiortc, the rest ours.

aiortc's ``RTCRtpReceiver`` decodes everything it receives in a thread, knows no rids, and hands out decoded
frames only (peers.md §5, feasibility.md §7).  A WHIP endpoint that forwards encoded frames, or decodes them in a
worker process of its own, needs the packets.  So this module uses aiortc the ORTC way — ``RTCIceGatherer`` →
``RTCIceTransport`` → ``RTCDtlsTransport`` — and registers its own ``RtpSink`` with the DTLS transport's RTP
router, the same hook aiortc's receivers use: every decrypted RTP packet of the negotiated payload types and every
RTCP packet naming a known SSRC reaches the sink, parsed, on the event loop.  The SDP is the caller's
(``ingest/whip/answer.py`` writes it from ``local_parameters``).

Private aiortc names relied on (pinned 1.16.0, exercised by ``tests/webrtc/test_receive.py``):
``RTCDtlsTransport._register_rtp_receiver`` / ``._unregister_rtp_receiver`` / ``._send_rtp`` / ``._set_role``,
and the receiver protocol it calls (``_handle_rtp_packet``, ``_handle_rtcp_packet``, ``_handle_disconnect``);
for an ICE restart (exercised by ``tests/e2e/test_whip_browser.py``) ``RTCDtlsTransport._transport``, through
which it reads and writes every datagram, and aioice's ``Connection._queue`` (one ignorable datagram wakes a read
parked on the old agent); for arrival times aioice's ``Connection._protocols`` (their asyncio datagram transports).

Arrival times: transport-wide congestion feedback tells the publisher when each packet arrived, and the publisher
reads a growing delay as congestion.  Stamped when Python gets to a datagram, a busy event loop (or a busy shared
host) looks like a congested path and the browser backs off for nothing.  So the UDP sockets have the kernel stamp
each datagram as it arrives (``SO_TIMESTAMPNS``), read with ``recvmsg`` by ``KernelArrivals``, and the sink gets
that time (on the monotonic clock) for each RTP packet.

The hot path: once DTLS has keyed SRTP, ``KernelArrivals`` hands every SRTP (not SRTCP) datagram straight to
``ReceiveTransport``, which decrypts it with the DTLS transport's own SRTP session, parses it and gives it to the
sink — the datagram never goes through aioice's STUN check (a parse that fails by exception for every media
packet), its queue, aiortc's DTLS read loop and RTP router.  What aiortc's router would do is kept: only the
registered payload types reach the sink.  Everything else (STUN, DTLS, SRTCP, SRTP before keying, TURN-relayed
datagrams) takes aiortc's path as before.  Private names for this: ``RTCDtlsTransport._rx_srtp``,
``._rtp_header_extensions_map`` and ``._rtp_router.ssrc_table`` (so that RTCP about an SSRC still reaches us).
"""

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pylibsrtp
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceServer, RTCIceTransport
from aiortc.rtcdtlstransport import RTCDtlsFingerprint, RTCDtlsParameters
from aiortc.rtcicetransport import RTCIceParameters
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import AnyRtcpPacket, RtpPacket
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from pyingress.webrtc.ice import gathering_from

logger = logging.getLogger(__name__)

_certificate: RTCCertificate | None = None


def shared_certificate() -> RTCCertificate:
    """One DTLS certificate for the process, renewed a day before it expires (a key per call costs ~5 ms)."""
    global _certificate
    import datetime

    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    if _certificate is None or _certificate.expires < soon:
        _certificate = RTCCertificate.generateCertificate()
    return _certificate


class RtpSink(Protocol):
    """What receives the packets (called on the event loop, in arrival order)."""

    def on_rtp(self, packet: RtpPacket, arrival: float) -> None:
        """``arrival``: when the datagram reached this host, on ``time.monotonic``'s clock."""

    def on_rtcp(self, packet: AnyRtcpPacket) -> None: ...


@dataclass(frozen=True)
class LocalParameters:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: tuple[str, str]  # ("sha-256", "AB:…")
    candidates: tuple[str, ...]  # "candidate:…", as SDP writes them


@dataclass(frozen=True)
class RemoteParameters:
    ice_ufrag: str
    ice_pwd: str
    ice_lite: bool
    fingerprints: tuple[tuple[str, str], ...]
    candidates: tuple[str, ...]  # "candidate:…" from the offer; none: the publisher is found by its checks
    dtls_role: str  # ours: "server" or "client"


SO_TIMESTAMPNS = 35  # Linux (asm-generic/socket.h); the control message carrying the stamp has the same number
_TIMESPEC = struct.Struct("@qq")


class KernelArrivals:
    """The kernel's receive time of every SRTP packet on an ICE agent's sockets, on ``time.monotonic``'s clock.

    ``watch(ice)`` pauses each socket's asyncio transport and reads a duplicate of its descriptor with ``recvmsg``
    instead; an SRTP datagram goes to ``on_srtp(data, arrival)`` (when that returns True it was taken), anything
    else on to aioice's protocol as the transport would hand it.  ``close()`` gives the sockets back."""

    def __init__(self, on_srtp: Callable[[bytes, float], bool] | None = None) -> None:
        self.on_srtp = on_srtp
        self.stamped = 0  # SRTP packets whose kernel stamp was taken
        self._watched: list[tuple[RTCIceTransport, socket.socket, Any]] = []  # (agent, duplicate, its transport)

    def watch(self, ice: RTCIceTransport) -> None:
        loop = asyncio.get_running_loop()
        for protocol in list(ice._connection._protocols):
            transport: Any = getattr(protocol, "transport", None)
            original = transport.get_extra_info("socket") if transport is not None else None
            if original is None or original.type != socket.SOCK_DGRAM or not hasattr(transport, "pause_reading"):
                continue  # a TURN allocation (no socket of its own), or not a transport we know how to pause
            try:
                duplicate = socket.socket(fileno=os.dup(original.fileno()))
                duplicate.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                duplicate.setblocking(False)
            except OSError as error:
                logger.debug("no kernel arrival times: %s", error)
                continue
            transport.pause_reading()
            loop.add_reader(duplicate.fileno(), self._read, duplicate, protocol)
            self._watched.append((ice, duplicate, transport))

    def forget(self, ice: RTCIceTransport | None = None) -> None:
        """Give ``ice``'s sockets (every agent's when None) back to their transports."""
        loop = asyncio.get_running_loop()
        for entry in [w for w in self._watched if ice is None or w[0] is ice]:
            _, duplicate, transport = entry
            loop.remove_reader(duplicate.fileno())
            duplicate.close()
            if not transport.is_closing():
                transport.resume_reading()
            self._watched.remove(entry)

    def _read(self, sock: socket.socket, protocol: asyncio.DatagramProtocol) -> None:
        on_srtp = self.on_srtp
        # The kernel stamps on the wall clock; the offset to the monotonic one is read once per wake-up, and again
        # only for a packet stamped after that reading (never later than "now": a stepped wall clock cannot put
        # an arrival in the future).
        now = offset = 0.0
        for _ in range(64):  # what queued up since the last wake-up, in one go
            try:
                data, ancillary, _flags, address = sock.recvmsg(65536, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                protocol.error_received(error)
                return
            # SRTP, not SRTCP (second byte 192-208: an RTCP packet type, as aiortc tells them apart).
            if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 208 and on_srtp is not None:
                arrival = -1.0
                if ancillary:
                    level, kind, value = ancillary[0]
                    if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(value) >= _TIMESPEC.size:
                        seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                        stamp = seconds + nanoseconds * 1e-9
                        arrival = stamp + offset
                        if arrival > now:
                            now = time.monotonic()
                            offset = now - time.time()
                            arrival = min(stamp + offset, now)
                        self.stamped += 1
                if arrival < 0:
                    arrival = time.monotonic()
                if on_srtp(data, arrival):
                    continue
            protocol.datagram_received(data, address)


class _RouterHook:
    """The object aiortc's RTP router calls; forwards to the sink (its methods are aiortc's receiver protocol)."""

    def __init__(self, sink: RtpSink, on_disconnect: Callable[[], None]) -> None:
        self.sink = sink
        self.on_disconnect = on_disconnect

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        # Only what did not come through ``KernelArrivals`` (a TURN relay, SRTP before keying): no kernel stamp.
        self.sink.on_rtp(packet, time.monotonic())

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.sink.on_rtcp(packet)

    def _handle_disconnect(self) -> None:
        self.on_disconnect()


class ReceiveTransport:
    """One publisher's ICE + DTLS/SRTP transport, receiving into an ``RtpSink``.

    ``gather()`` → ``local_parameters()`` (for the answer) → ``register(sink, …)`` → ``connect(remote)`` in a task;
    ``failed`` is set when ICE or DTLS fails or closes under us; ``close()`` ends everything (idempotent).
    """

    def __init__(self, ice_servers: Sequence[RTCIceServer] = (), host_addresses: Sequence[str] | None = None) -> None:
        self.host_addresses = host_addresses
        self.ice_servers = list(ice_servers)
        self.gatherer = RTCIceGatherer(iceServers=list(ice_servers))
        self.ice = RTCIceTransport(self.gatherer)
        self.dtls = RTCDtlsTransport(self.ice, [shared_certificate()])
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self.closed = False
        self._hook: _RouterHook | None = None
        self._payload_types: frozenset[int] = frozenset()
        self._ssrcs: set[int] = set()  # SSRCs seen on the hot path
        self.arrivals = KernelArrivals(self._srtp_datagram)
        self._restarts: set[asyncio.Task[None]] = set()
        self.restarts = 0  # ICE restarts completed
        self.dtls.on("statechange", self._dtls_state)
        self.ice.on("statechange", self._ice_state)

    async def gather(self) -> None:
        with gathering_from(self.host_addresses):
            await self.gatherer.gather()

    def local_parameters(self, gatherer: RTCIceGatherer | None = None) -> LocalParameters:
        gatherer = gatherer or self.gatherer
        ice = gatherer.getLocalParameters()
        fingerprint = next(f for f in self.dtls.getLocalParameters().fingerprints if f.algorithm == "sha-256")
        candidates = tuple(f"candidate:{candidate_to_sdp(c)}" for c in gatherer.getLocalCandidates())
        ufrag, pwd = ice.usernameFragment or "", ice.password or ""
        return LocalParameters(ufrag, pwd, (fingerprint.algorithm, fingerprint.value), candidates)

    def register(
        self,
        sink: RtpSink,
        codecs: Sequence[RTCRtpCodecParameters],
        extensions: Sequence[RTCRtpHeaderExtensionParameters],
    ) -> None:
        """Route every RTP packet of ``codecs``' payload types, and RTCP about their SSRCs, to ``sink``."""
        self._hook = _RouterHook(sink, self._disconnected)
        self._payload_types = frozenset(codec.payloadType for codec in codecs if codec.payloadType is not None)
        parameters = RTCRtpReceiveParameters(codecs=list(codecs), headerExtensions=list(extensions))
        self.dtls._register_rtp_receiver(self._hook, parameters)

    def _srtp_datagram(self, data: bytes, arrival: float) -> bool:
        """An SRTP datagram straight from the socket: decrypted, parsed and given to the sink here (True), or left
        to aiortc's path (False: SRTP is not keyed yet, or no sink)."""
        srtp = self.dtls._rx_srtp
        hook = self._hook
        if srtp is None or hook is None:
            return False
        try:
            data = srtp.unprotect(data)
            packet = RtpPacket.parse(data, self.dtls._rtp_header_extensions_map)
        except (pylibsrtp.Error, ValueError):
            return True  # as aiortc does: a packet that fails authentication or parsing is dropped
        if packet.payload_type in self._payload_types:  # as aiortc's router: our payload types only
            if packet.ssrc not in self._ssrcs:
                # What aiortc's router learns from the first packet of an SSRC: its RTCP (sender reports) is ours.
                self._ssrcs.add(packet.ssrc)
                self.dtls._rtp_router.ssrc_table[packet.ssrc] = hook
            try:
                hook.sink.on_rtp(packet, arrival)
            except Exception:
                # On aiortc's path this ended its DTLS read loop and so the transport: the sink gets nothing more
                # and the transport has failed.
                logger.exception("the RTP sink failed")
                self.dtls._unregister_rtp_receiver(hook)
                self._hook = None
                self._disconnected()
        return True

    async def connect(self, remote: RemoteParameters) -> bool:
        """ICE, then the DTLS handshake; True when media can flow (False: ``failed`` is set)."""
        await _start_ice(self.ice, remote)
        if self.ice.state != "completed" or self.closed:
            self.failed.set()
            return False
        self.arrivals.watch(self.ice)
        self.dtls._set_role(remote.dtls_role)
        fingerprints = [RTCDtlsFingerprint(algorithm, value) for algorithm, value in remote.fingerprints]
        await self.dtls.start(RTCDtlsParameters(fingerprints=fingerprints))
        if self.dtls.state != "connected":
            self.failed.set()
            return False
        self.connected.set()
        return True

    async def restart_ice(self, remote: RemoteParameters) -> LocalParameters:
        """An ICE restart (RFC 8445 §9): a new agent with new credentials under the same DTLS association.

        Returns the new agent's parameters at once (for the PATCH answer); media keeps flowing on the old path
        until the new one is nominated, then DTLS is moved onto it and the old agent closed.  aiortc has no ICE
        restart of its own: what this relies on is ``RTCDtlsTransport`` reading and writing through its
        ``transport`` attribute on every datagram."""
        gatherer = RTCIceGatherer(iceServers=self.ice_servers)
        with gathering_from(self.host_addresses):
            await gatherer.gather()
        task = asyncio.create_task(self._switch(RTCIceTransport(gatherer), remote))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)
        return self.local_parameters(gatherer)

    async def _switch(self, ice: RTCIceTransport, remote: RemoteParameters) -> None:
        await _start_ice(ice, remote)
        if ice.state != "completed" or self.closed:
            await ice.stop()
            return
        old = self.ice
        old.remove_listener("statechange", self._ice_state)
        ice.on("statechange", self._ice_state)
        self.ice, self.gatherer = ice, ice.iceGatherer
        self.arrivals.watch(ice)
        self.dtls._transport = ice
        # The DTLS read loop may be parked on the old agent's queue: one ignorable datagram moves it along.
        old._connection._queue.put_nowait((b"\x00", 1))
        self.restarts += 1
        try:
            await asyncio.sleep(1.0)  # what the old path still carries
        finally:
            self.arrivals.forget(old)
            await old.stop()

    async def send_rtcp(self, data: bytes) -> bool:
        """Send serialised RTCP (one or more packets); False when the transport cannot send (yet, or any more)."""
        if self.dtls.state != "connected":
            return False
        try:
            await self.dtls._send_rtp(data)
        except ConnectionError:
            return False
        return True

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self._restarts):
            task.cancel()
        if self._hook is not None:
            self.dtls._unregister_rtp_receiver(self._hook)
        self.arrivals.forget()
        with contextlib.suppress(Exception):
            await self.dtls.stop()
        with contextlib.suppress(Exception):
            await self.ice.stop()

    def _dtls_state(self) -> None:
        if self.dtls.state in ("failed", "closed") and not self.closed:
            self.failed.set()

    def _ice_state(self) -> None:
        if self.ice.state in ("failed", "closed") and not self.closed:
            self.failed.set()

    def _disconnected(self) -> None:
        if not self.closed:
            self.failed.set()


async def _start_ice(ice: RTCIceTransport, remote: RemoteParameters) -> None:
    """Remote candidates in, then connectivity checks until a pair is nominated (or the agent gives up)."""
    for text in remote.candidates:
        with contextlib.suppress(ValueError, IndexError, AssertionError):
            candidate = candidate_from_sdp(text.removeprefix("candidate:"))
            candidate.sdpMLineIndex = 0
            await ice.addRemoteCandidate(candidate)
    if remote.candidates:
        await ice.addRemoteCandidate(None)
    # aioice: the answerer is the controlled agent, unless the offerer is ICE lite.
    ice._connection.ice_controlling = remote.ice_lite
    await ice.start(RTCIceParameters(remote.ice_ufrag, remote.ice_pwd, remote.ice_lite))
