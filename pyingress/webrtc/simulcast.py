"""rid simulcast sending on top of aiortc 1.16.0 (pinned): one video m-line carrying every layer of a track.

aiortc has no simulcast (protocol.md §5.6, peers.md §5): one SSRC per sender, no ``a=rid``/``a=simulcast``, the
``rtp-stream-id`` header extension parsed but never written.  LiveKit wants what a browser sends (§5.4): one video
transceiver whose offer lists ``a=rid:q send`` … and ``a=simulcast:send q;h;f``, and RTP packets that name their
layer with the ``mid`` and ``rtp-stream-id`` extensions, each layer with its own SSRC and sequence space.

How this module extends aiortc, by composition only:

* The video transceiver's own ``RTCRtpSender`` keeps an ``IdleTrack`` (``direct_send``) that never yields a frame:
  it gives the track its msid (LiveKit matches AddTrackRequest.cid against it) and otherwise stays idle.
* ``sdp.add_simulcast_to_offer`` rewrites the offer text aiortc produced for that m-line (its SDP model has no
  rid); ``sdp.negotiated_codec`` reads what the answer accepted.
* ``SimulcastSender`` (a ``direct_send.StreamSender``) owns one ``LayerStream`` per layer and writes their RTP
  itself.  Each layer's SSRC is registered with the DTLS transport's RTP router, so PLI/FIR and NACK for a layer
  reach that layer: a keyframe request callback per quality, retransmission from a per-layer history.  RTCP
  sender reports go out per layer (LiveKit aligns layer timestamps with them).

Private aiortc names this module relies on besides ``direct_send``'s (stable within the pinned version, each
exercised by ``tests/webrtc/test_simulcast.py``): the packetizers ``H264Encoder._split_bitstream``/``._packetize``
and ``Vp8Encoder._packetize`` (classmethods, no encoder is created), ``RTCRtpSender._ssrc``/``._rtx_ssrc`` (read
only, to keep layer SSRCs distinct) and ``MediaStreamTrack._id`` (the track id LiveKit sees).
"""

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aiortc import RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from pyingress.webrtc.direct_send import RtpStream, StreamSender, random32
from pyingress.webrtc.sdp import RID_URI, add_simulcast_to_offer, ssrc_cname

logger = logging.getLogger(__name__)

# LiveKit names layers by position with these rids (protocol.md §5.4: with 3 layers q→0, h→1, f→2; with 2 layers
# rid[0]→0, rid[1]→1).  Assigning them lowest quality first keeps the server's mapping warning-free for any count.
RIDS = ("q", "h", "f")

KeyframeRequest = Callable[[int], None]


@dataclass(frozen=True)
class SimulcastEncoding:
    """One layer as negotiated: its rid and the LiveKit VideoQuality it carries."""

    rid: str
    quality: int


def assign_rids(qualities: Iterable[int]) -> tuple[SimulcastEncoding, ...]:
    """rids for the given layer qualities, lowest quality first (q, h, f)."""
    ordered = sorted(set(qualities))
    if not ordered or len(ordered) > len(RIDS):
        raise ValueError(f"simulcast needs 1 to {len(RIDS)} distinct layer qualities, got {ordered}")
    return tuple(SimulcastEncoding(rid, quality) for rid, quality in zip(RIDS, ordered, strict=False))


# ---------------------------------------------------------------------------------------------------------------
# One layer's RTP stream


@dataclass(eq=False)  # identity-hashed: aiortc's RtpRouter keeps its senders by identity
class LayerStream(RtpStream):
    """One simulcast encoding on the wire: an ``RtpStream`` that names its layer (rid), packetizes H.264/VP8 and
    passes keyframe requests on with its quality."""

    encoding: SimulcastEncoding
    codec: str  # "h264" | "vp8"
    on_keyframe_request: KeyframeRequest | None = None
    _picture_id: int = field(default_factory=lambda: random.getrandbits(15), repr=False)

    def payloads(self, frame: bytes) -> list[bytes]:
        if self.codec == "h264":
            return H264Encoder._packetize(H264Encoder._split_bitstream(frame))
        if self.codec == "vp8":
            payloads = Vp8Encoder._packetize(frame, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads
        raise ValueError(f"unsupported simulcast codec {self.codec!r}")

    def packetize(
        self, frame: bytes, timestamp: int, payload_type: int, mid: str | None, now: float | None = None
    ) -> list[RtpPacket]:
        """The RTP packets of one encoded frame whose media time is ``timestamp`` (90 kHz units)."""
        return self.packets(self.payloads(frame), timestamp, payload_type, mid, self.encoding.rid, now)

    def request_keyframe(self) -> None:
        super().request_keyframe()
        if self.on_keyframe_request is not None:
            self.on_keyframe_request(self.encoding.quality)


# ---------------------------------------------------------------------------------------------------------------
# The sender


class SimulcastSender(StreamSender):
    """Sends pre-encoded frames of every layer of one video track over the transceiver's m-line.

    Lifecycle: construct with the transceiver (its sender holding an ``IdleTrack``) before the offer;
    ``munge_offer`` the local offer text; after ``setRemoteDescription(answer)`` call ``start(answer_sdp)``;
    ``send_frame`` per encoded frame (when the peer connection is connected); ``stop`` at the end.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        codec: str,
        encodings: Sequence[SimulcastEncoding],
        on_keyframe_request: KeyframeRequest | None = None,
    ) -> None:
        codec = codec.lower()
        if codec not in ("h264", "vp8"):
            raise ValueError(f"unsupported simulcast codec {codec!r}")
        super().__init__(transceiver)
        self.codec = codec
        self.encodings = tuple(encodings)
        ssrcs: set[int] = {transceiver.sender._ssrc, transceiver.sender._rtx_ssrc, 0}
        self.layers: dict[int, LayerStream] = {}
        for encoding in self.encodings:
            ssrc = random32()
            while ssrc in ssrcs:
                ssrc = random32()
            ssrcs.add(ssrc)
            layer = LayerStream(encoding, codec, on_keyframe_request, ssrc=ssrc, retransmit=self.resend)
            self.layers[encoding.quality] = layer

    def streams(self) -> Iterable[LayerStream]:
        return self.layers.values()

    def munge_offer(self, sdp: str) -> str:
        """The local offer (after setLocalDescription, so it carries candidates) with the rid simulcast lines."""
        if self.mid is None:
            raise RuntimeError("the transceiver has no mid yet: call setLocalDescription first")
        self.cname = ssrc_cname(sdp) or self.cname
        return add_simulcast_to_offer(sdp, self.mid, [e.rid for e in self.encodings])

    def start(self, answer_sdp: str) -> None:
        """Read the negotiated payload type and extension ids; route this track's RTCP to its layers."""
        negotiated = self.attach(answer_sdp, self.codec)
        if negotiated.extension_id(RID_URI) is None:
            raise ValueError("the answer did not accept the rtp-stream-id header extension: no simulcast")

    async def send_frame(self, quality: int, frame: bytes, timestamp: int) -> int:
        """Packetize and send one encoded frame of layer ``quality``; ``timestamp`` in 90 kHz. Packets sent."""
        if self.negotiated is None:
            raise RuntimeError("simulcast sender not started")
        packets = self.layers[quality].packetize(frame, timestamp, self.negotiated.payload_type, self.mid)
        await self.send_packets(packets)
        return len(packets)

    def request_keyframes(self) -> None:
        for layer in self.layers.values():
            layer.request_keyframe()
