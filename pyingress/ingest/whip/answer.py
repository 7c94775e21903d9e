"""The SDP answer to a WHIP offer, written from what was negotiated (sans-IO: offer and local parameters in, text out).

aiortc's own answerer cannot be used here: its SDP model knows no rids or simulcast, its codec list has no VP9, AV1
or H.264 beyond constrained baseline, and its receivers decode everything (peers.md §5).  The endpoint runs
aiortc's ICE and DTLS transports directly (``webrtc/receive.py``) and answers the offer itself:

- one BUNDLE transport for every accepted section (WHIP requires max-bundle, RFC 9725 §4.2), our ICE credentials,
  every gathered candidate in every accepted section (a publisher reads whichever it likes), no trickle;
- per accepted section: ``recvonly``, the single codec chosen (no RTX, RED or FEC: a lost packet is NACKed and
  resent on its own SSRC, which keeps one SSRC per layer), its fmtp and the feedback we act on (NACK, PLI, FIR,
  transport-cc — or REMB for a publisher without it); the header extensions we read (mid, rtp-stream-id,
  abs-send-time, transport-wide sequence numbers) under the offer's ids; the offer's rids as ``a=rid:<rid> recv``
  and ``a=simulcast:recv`` in the offer's order;
- a section we do not take (a second kind we cannot decode, a data channel) is rejected with port 0.
- DTLS role: the publisher's ``actpass`` makes us ``passive`` (the publisher starts the handshake as soon as ICE
  works, which saves a round trip); an ``active`` publisher makes us passive too, a ``passive`` one active.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyingress.ingest.whip.offer import Codec, OfferedMedia, WhipOffer
from pyingress.webrtc.sdp import MID_URI, RID_URI, join_sections
from pyingress.webrtc.transport_cc import TRANSPORT_CC_URI

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ACCEPTED_EXTENSIONS = (MID_URI, RID_URI, ABS_SEND_TIME_URI, TRANSPORT_CC_URI)
START_BITRATE_KBPS = 2500  # the default preset's 720p ladder: 1.7 + 0.6 + 0.2 Mb/s
ACCEPTED_FEEDBACK = {
    "video": ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"),
    "audio": ("transport-cc",),
}


@dataclass(frozen=True)
class LocalTransport:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: tuple[str, str]  # (algorithm, value), e.g. ("sha-256", "AB:CD:…")
    candidates: tuple[str, ...]  # "candidate:…"
    session_id: int = 1


def uses_transport_cc(media: OfferedMedia, codec: Codec) -> bool:
    """Transport-cc is answered whenever offered with its header extension, and then REMB is not: the publisher
    estimates the path from our feedback (``webrtc/transport_cc.py``) instead of being told a rate.  Without the
    extension there are no sequence numbers to report, and a sender told to expect feedback that never comes
    lowers its estimate step by step (measured with Chromium: 2.5 → 0.5 Mb/s in 10 s)."""
    return "transport-cc" in codec.feedback and TRANSPORT_CC_URI in media.extensions


def dtls_role(offer_setup: str) -> str:
    """Our DTLS role ("server" or "client") for the offerer's a=setup."""
    return "client" if offer_setup == "passive" else "server"


def build_answer(
    offer: WhipOffer, local: LocalTransport, chosen: Mapping[int, Codec], extensions: Sequence[str] = ()
) -> str:
    """The answer: ``chosen`` maps an m-section index to its codec; sections without one are rejected."""
    accepted = [m for m in offer.media if m.index in chosen]
    session = [
        "v=0",
        f"o=pyingress {local.session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(m.mid for m in accepted),
        "a=msid-semantic: WMS",
    ]
    setup = "active" if dtls_role(offer.setup) == "client" else "passive"
    wanted = set(extensions or ACCEPTED_EXTENSIONS)
    sections = []
    for media in offer.media:
        codec = chosen.get(media.index)
        if codec is None:
            sections.append(_rejected(media))
        else:
            sections.append(_accepted(media, codec, local, setup, wanted))
    return join_sections(session, sections)


def _rejected(media: OfferedMedia) -> list[str]:
    proto_and_formats = media.lines[0].split(None, 2)[2] if len(media.lines[0].split(None, 2)) > 2 else "RTP/AVP 0"
    return [f"m={media.kind} 0 {proto_and_formats}", "c=IN IP4 0.0.0.0", f"a=mid:{media.mid}", "a=inactive"]


def _accepted(media: OfferedMedia, codec: Codec, local: LocalTransport, setup: str, wanted: set[str]) -> list[str]:
    pt = codec.payload_type
    lines = [
        f"m={media.kind} 9 UDP/TLS/RTP/SAVPF {pt}",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        f"a=fingerprint:{local.fingerprint[0]} {local.fingerprint[1]}",
        f"a=setup:{setup}",
        f"a=mid:{media.mid}",
    ]
    transport_cc = uses_transport_cc(media, codec)
    for uri, extension_id in media.extensions.items():
        if uri in wanted and (uri != RID_URI or media.rids) and (uri != TRANSPORT_CC_URI or transport_cc):
            lines.append(f"a=extmap:{extension_id} {uri}")
    lines += ["a=recvonly", "a=rtcp-mux"]
    if media.rtcp_rsize:
        lines.append("a=rtcp-rsize")
    channels = f"/{codec.channels}" if media.kind == "audio" and codec.channels > 1 else ""
    lines.append(f"a=rtpmap:{pt} {codec.name}/{codec.clock_rate}{channels}")
    bandwidth = "transport-cc" if transport_cc else "goog-remb"  # one of the two, never both
    for feedback in ACCEPTED_FEEDBACK.get(media.kind, ()):
        if feedback in codec.feedback and (feedback not in ("transport-cc", "goog-remb") or feedback == bandwidth):
            lines.append(f"a=rtcp-fb:{pt} {feedback}")
    parameters = codec.fmtp()
    if media.kind == "video" and ("goog-remb" in codec.feedback or transport_cc):
        # Chromium starts at 300 kb/s and scales a 720p camera down to fit; its estimate (from our transport-wide
        # feedback, or the REMB we send) rises within seconds, but its encoder takes ~20 s to scale back up.
        # Starting at the ladder's rate skips that (an offer-side Chromium extension, ignored by everyone else);
        # with transport-cc, a path that cannot carry it is found within a second and the rate backs off.
        parameters = ";".join(p for p in (parameters, f"x-google-start-bitrate={START_BITRATE_KBPS}") if p)
    if parameters:
        lines.append(f"a=fmtp:{pt} {parameters}")
    if media.rids:
        lines += [f"a=rid:{rid} recv" for rid in media.rids]
        lines.append("a=simulcast:recv " + ";".join(media.rids))
    lines += [f"a={candidate}" for candidate in local.candidates]
    lines.append("a=end-of-candidates")
    return lines
