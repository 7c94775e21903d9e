"""One WHIP publisher from its offer to its end: the transport, the receiver, the timers, the MediaSource.

    connection = WhipConnection(offer, …)
    answer = await connection.negotiate(passthrough)   # codecs chosen, candidates gathered (5 s bound)
    connection.start()                                 # connects and receives in a task; the source fills
    connection.delete()                                # the publisher's DELETE

How it ends (the source's ``EndReason`` tells the session, ``session/slot.py`` decides what follows):

- DELETE → UNPUBLISHED (a goodbye: the reconnect grace applies, as after RTMP's FCUnpublish);
- ICE/DTLS failing or closing → DISCONNECTED (grace applies); ``MEDIA_TIMEOUT`` without a packet → SILENT (the
  publisher had that long to come back; a re-POST while it looked alive took over already): the session ends;
- not connected, or a kind the offer announced never arrived, within ``TRACK_TIMEOUT`` of the answer → ERROR
  ``source encoder not ready`` (livekit/ingress's 10 s ``sessionStartTimeout``);
- the session closing the source (a newer publisher, Update/Delete, shutdown) → the transport is closed.
"""

import asyncio
import contextlib
import logging
import random
import time

from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from pyingress.control.errors import SOURCE_NOT_READY, UNSUPPORTED_DECODE_FORMAT
from pyingress.ingest.flow import FlowPolicy
from pyingress.ingest.source import EndReason, MediaSource
from pyingress.ingest.whip.answer import (
    ACCEPTED_EXTENSIONS,
    LocalTransport,
    build_answer,
    dtls_role,
    uses_transport_cc,
)
from pyingress.ingest.whip.errors import ICE_GATHERING_TIMEOUT, INVALID_RESTART_REQUEST
from pyingress.ingest.whip.offer import Codec, WhipOffer, choose_codec
from pyingress.ingest.whip.receiver import FEEDBACK_INTERVAL, TrackPlan, WhipReceiver
from pyingress.ingest.whip.rtc import RtcSettings
from pyingress.webrtc.receive import ReceiveTransport, RemoteParameters

log = logging.getLogger("pyingress.whip")

GATHER_TIMEOUT = 5.0  # livekit/ingress: sdpResponseTimeout
TRACK_TIMEOUT = 10.0  # livekit/ingress: sessionStartTimeout
MEDIA_TIMEOUT = 10.0  # no packet at all this long: the publisher is gone
POLL_INTERVAL = 0.01  # while a gap is open: gaps are given up and NACKs retried at this pace
# Without a gap, the receiver's timers need no more than its transport-wide feedback does (FEEDBACK_INTERVAL):
# five times fewer wake-ups per session than polling at POLL_INTERVAL throughout.
IDLE_POLL_INTERVAL = FEEDBACK_INTERVAL
REPORT_INTERVAL = 1.0  # receiver reports
# How long frames behind a gap wait for a retransmission: pass-through hands viewers a keyframe sooner rather
# than a long stall; a decoder is fed like livekit/ingress's jitter buffer feeds GStreamer (600 ms video).
PASSTHROUGH_MAX_WAIT = 0.15
TRANSCODE_MAX_WAIT = 0.6


class WhipConnection:
    def __init__(
        self,
        offer: WhipOffer,
        *,
        resource_id: str,
        connection_id: str,
        stream_key: str,
        app: str,
        rtc: RtcSettings,
        remote_address: str = "",
    ) -> None:
        self.offer = offer
        self.resource_id = resource_id  # the session's (what the source is attached to)
        self.connection_id = connection_id  # this publisher's WHIP resource (Location, DELETE)
        self.ended_at: float | None = None
        self.source = MediaSource(
            protocol="whip",
            stream_key=stream_key,
            app=app,
            resource_id=resource_id,
            remote_address=remote_address,
            flow=FlowPolicy.DROP_TO_KEYFRAME,
        )
        self.transport = ReceiveTransport(rtc.ice_servers, rtc.host_addresses)
        self.receiver: WhipReceiver | None = None
        self.answer = ""
        self.passthrough = True
        self.expected_kinds: set[str] = set()
        self.started_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[bool]] = set()
        self.source.on_close(self._closed_by_session)

    async def negotiate(self, passthrough: bool) -> str:
        """The answer for the offer (IngressError: unsupported format, ICE gathering timed out)."""
        self.passthrough = passthrough
        chosen: dict[int, Codec] = {}
        plans: list[TrackPlan] = []
        for media in self.offer.media:
            if not media.receivable:
                continue
            picked = choose_codec(media, passthrough)
            if picked is None:
                continue
            codec, support = picked
            chosen[media.index] = codec
            plans.append(
                TrackPlan(
                    kind="audio" if media.kind == "audio" else "video",
                    payload_type=codec.payload_type,
                    codec=support.ffmpeg_name,
                    clock_rate=codec.clock_rate,
                    channels=(2 if media.stereo else 1) if codec.key == "opus" else codec.channels,
                    rids=media.rids,
                    pli="nack pli" in codec.feedback,
                    fir="ccm fir" in codec.feedback,
                    remb="goog-remb" in codec.feedback and not uses_transport_cc(media, codec),
                    transport_cc=uses_transport_cc(media, codec),
                )
            )
        if not plans:
            raise UNSUPPORTED_DECODE_FORMAT
        self.expected_kinds = {plan.kind for plan in plans}
        try:
            async with asyncio.timeout(GATHER_TIMEOUT):
                await self.transport.gather()
        except TimeoutError:
            await self.transport.close()
            raise ICE_GATHERING_TIMEOUT from None
        local = self.transport.local_parameters()
        answer = build_answer(
            self.offer,
            LocalTransport(local.ice_ufrag, local.ice_pwd, local.fingerprint, local.candidates, random.getrandbits(62)),
            chosen,
        )
        self.receiver = WhipReceiver(
            self.source,
            plans,
            send_rtcp=self._send_rtcp,
            rtcp_ssrc=random.getrandbits(32),
            max_wait=PASSTHROUGH_MAX_WAIT if passthrough else TRANSCODE_MAX_WAIT,
            sync_to_sender_reports=not passthrough,
        )
        extensions = [
            RTCRtpHeaderExtensionParameters(id=extension_id, uri=uri)
            for media in self.offer.media
            if media.index in chosen
            for uri, extension_id in media.extensions.items()
            if uri in ACCEPTED_EXTENSIONS
        ]
        self.transport.register(self.receiver, [_aiortc_codec(plan) for plan in plans], extensions)
        return answer

    def start(self) -> None:
        """Describe the tracks to the source and connect; the rest runs in a task until the source ends."""
        assert self.receiver is not None
        self.receiver.describe()
        self._task = asyncio.create_task(self._run(), name=f"whip-{self.resource_id}")

    async def restart_ice(self, fragment: str) -> str:
        """An ICE restart from a PATCH body (``application/trickle-ice-sdpfrag``, RFC 8840): the answer fragment
        with our new credentials and candidates; INVALID_RESTART_REQUEST without ``ice-ufrag``/``ice-pwd``."""
        lines = [line.strip() for line in fragment.replace("\r\n", "\n").split("\n")]
        ufrag = next((line[len("a=ice-ufrag:") :] for line in lines if line.startswith("a=ice-ufrag:")), "")
        pwd = next((line[len("a=ice-pwd:") :] for line in lines if line.startswith("a=ice-pwd:")), "")
        if not ufrag or not pwd:
            raise INVALID_RESTART_REQUEST
        candidates = tuple(line[len("a=") :] for line in lines if line.startswith("a=candidate:"))
        remote = RemoteParameters(
            ice_ufrag=ufrag,
            ice_pwd=pwd,
            ice_lite=self.offer.ice_lite,
            fingerprints=tuple((f.algorithm, f.value) for f in self.offer.fingerprints),
            candidates=candidates,
            dtls_role=dtls_role(self.offer.setup),
        )
        try:
            async with asyncio.timeout(GATHER_TIMEOUT):
                local = await self.transport.restart_ice(remote)
        except TimeoutError:
            raise ICE_GATHERING_TIMEOUT from None
        log.info("WHIP %s: ICE restart", self.connection_id)
        answer = [f"a=ice-ufrag:{local.ice_ufrag}", f"a=ice-pwd:{local.ice_pwd}"]
        for media in self.offer.media:
            if media.receivable:
                answer += [f"m={media.kind} 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{media.mid}"]
                answer += [f"a={candidate}" for candidate in local.candidates]
                answer.append("a=end-of-candidates")
                break  # BUNDLE: the first section carries the transport of all
        return "\r\n".join(answer) + "\r\n"

    def delete(self) -> None:
        """The publisher's DELETE: a goodbye."""
        self.source.end(EndReason.UNPUBLISHED)
        self._stop_task()

    def fail(self, message: str) -> None:
        self.source.end(EndReason.ERROR, message)
        self._stop_task()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def ended(self) -> bool:
        return self.source.ended

    # -- the connection's life --------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.receiver is not None
        receiver = self.receiver
        try:
            if not await self._connect():
                return
            last_report = time.monotonic()
            while not self.source.ended:
                await asyncio.sleep(POLL_INTERVAL if receiver.waiting else IDLE_POLL_INTERVAL)
                now = time.monotonic()
                receiver.poll()
                if now - last_report >= REPORT_INTERVAL:
                    last_report = now
                    receiver.report()
                if self.transport.failed.is_set():
                    log.info("WHIP %s: the publisher's connection failed", self.resource_id)
                    self.source.end(EndReason.DISCONNECTED)
                elif not self.expected_kinds <= receiver.kinds_seen and now - self.started_at > TRACK_TIMEOUT:
                    missing = sorted(self.expected_kinds - receiver.kinds_seen)
                    log.info("WHIP %s: no %s within %.0f s", self.resource_id, " or ".join(missing), TRACK_TIMEOUT)
                    self.source.end(EndReason.ERROR, SOURCE_NOT_READY.message)
                elif now - (receiver.last_packet_at or self.started_at) > MEDIA_TIMEOUT:
                    log.info("WHIP %s: no media for %.0f s", self.resource_id, MEDIA_TIMEOUT)
                    self.source.end(EndReason.SILENT)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("WHIP %s failed", self.resource_id)
            self.source.end(EndReason.ERROR, "WHIP receiver failed")
        finally:
            self.ended_at = time.monotonic()
            receiver.export()
            await self.transport.close()

    async def _connect(self) -> bool:
        offer = self.offer
        remote = RemoteParameters(
            ice_ufrag=offer.ice_ufrag,
            ice_pwd=offer.ice_pwd,
            ice_lite=offer.ice_lite,
            fingerprints=tuple((f.algorithm, f.value) for f in offer.fingerprints),
            candidates=offer.candidates,
            dtls_role=dtls_role(offer.setup),
        )
        remaining = TRACK_TIMEOUT - (time.monotonic() - self.started_at)
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                connected = await self.transport.connect(remote)
        except TimeoutError:
            connected = False
        if not connected and not self.source.ended:
            log.info("WHIP %s: ICE/DTLS did not connect", self.resource_id)
            self.source.end(EndReason.ERROR, SOURCE_NOT_READY.message)
        return connected

    def _send_rtcp(self, data: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self.transport.send_rtcp(data))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _closed_by_session(self, reason: str) -> None:
        log.info("WHIP %s closed: %s", self.resource_id, reason)
        self._stop_task()
        if self._task is None:
            # Never started (refused after the answer was made): release the transport here.
            self._sends.add(asyncio.get_running_loop().create_task(_close(self.transport)))

    def _stop_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def _close(transport: ReceiveTransport) -> bool:
    await transport.close()
    return True


def _aiortc_codec(plan: TrackPlan) -> RTCRtpCodecParameters:
    """The payload type aiortc's router must route to us (the name is only for aiortc's logs)."""
    feedback = [RTCRtcpFeedback(type="nack")] if plan.kind == "video" else []
    mime = f"{plan.kind}/{plan.codec}"
    return RTCRtpCodecParameters(
        mimeType=mime, clockRate=plan.clock_rate, payloadType=plan.payload_type, rtcpFeedback=feedback
    )
