"""Opus on the publisher's audio m-line, sent by us: one RTP packet per pre-encoded frame (``direct_send``).

Through aiortc's own sender each Opus frame cost an ``av.Packet``, Fraction time-base conversions and four
coroutines per packet: about a third of the publisher's sending work for a twentieth of its bytes.

The SSRC the offer declares for this m-line is ours; aiortc's idle sender is moved to another one once the offer
is made, since it keeps sending sender reports of its own (with NTP time 0 when it has sent nothing), which on the
declared SSRC would contradict ours.
"""

from collections.abc import Iterable

from aiortc import RTCRtpTransceiver

from pyingress.webrtc.direct_send import RtpStream, StreamSender, random32

OPUS_CLOCK_RATE = 48_000


class AudioSender(StreamSender):
    """Lifecycle: construct with the transceiver (its sender holding an ``IdleTrack``) before the offer;
    ``offer_made`` after setLocalDescription; ``start(answer_sdp)`` after setRemoteDescription; ``send_frame`` per
    Opus frame; ``stop`` at the end."""

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        super().__init__(transceiver)
        self.stream = RtpStream(ssrc=transceiver.sender._ssrc, clock_rate=OPUS_CLOCK_RATE, retransmit=self.resend)

    def streams(self) -> Iterable[RtpStream]:
        return (self.stream,)

    def offer_made(self, cname: str | None) -> None:
        """The offer now declares ``self.stream.ssrc``: aiortc's sender reports go elsewhere from here on."""
        self.cname = cname or self.cname
        sender = self.transceiver.sender
        taken = {self.stream.ssrc, sender._rtx_ssrc, 0}
        other = random32()
        while other in taken:
            other = random32()
        sender._ssrc = other

    def start(self, answer_sdp: str) -> None:
        self.attach(answer_sdp, "opus")

    async def send_frame(self, data: bytes, timestamp: int) -> None:
        """One Opus frame whose media time is ``timestamp`` (48 kHz units)."""
        if self.negotiated is None:
            raise RuntimeError("audio sender not started")
        packets = self.stream.packets((data,), timestamp, self.negotiated.payload_type, self.mid)
        await self.send_packets(packets)
