"""A WHIP publisher's SDP offer, read and checked before anything is admitted or allocated (sans-IO).

``parse_offer(text)`` returns what the answer and the receiver need — per m-section its kind, mid, codecs, header
extension ids, simulcast rids and SSRCs, and the transport (ICE credentials, DTLS fingerprints and role,
candidates) — or raises IngressError with livekit/ingress's words (reference ingress.md §1.5):

- more than one audio or more than one video m-section → ``more than 1 track with given media kind`` (406);
- ``a=simulcast`` other than ``send <rid>;<rid>[;<rid>]`` → ``invalid simulcast configuration`` (406); beyond the
  reference we also refuse alternatives (``q,h``) and a simulcast offer without the rtp-stream-id extension, since
  its layers could not be told apart;
- no m-section we could receive a codec of → ``unsupported format for the source media`` (406).

What is not an SDP at all (no ``v=``, no media, no ICE credentials or fingerprint) is ``invalid SDP offer: …``
(400): livekit/ingress answers Pion's parse error with a bare 500.

Which codec of a section is taken is ``choose_codec``'s business: the publisher's order of preference among those
the session can use (pass-through forwards H.264, VP8 and Opus as they are; a transcoded session also decodes VP9,
AV1, PCMA and PCMU).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from pyingress.control.errors import UNSUPPORTED_DECODE_FORMAT
from pyingress.ingest.whip.errors import DUPLICATE_TRACK, INVALID_SIMULCAST, invalid_offer
from pyingress.webrtc.sdp import (
    RID_URI,
    attribute_values,
    payload_types,
    rids_of,
    section_kind,
    section_mid,
    split_sections,
)

MAX_SIMULCAST_LAYERS = 3


@dataclass(frozen=True)
class Codec:
    """One payload type an m-section offers."""

    payload_type: int
    name: str  # as a=rtpmap writes it: "opus", "H264", "VP8" …
    clock_rate: int
    channels: int = 1
    parameters: dict[str, str] = field(default_factory=dict)  # a=fmtp, key=value pairs
    feedback: tuple[str, ...] = ()  # a=rtcp-fb values: "nack", "nack pli", "ccm fir", "goog-remb" …

    @property
    def key(self) -> str:
        return self.name.lower()

    def fmtp(self) -> str:
        return ";".join(f"{k}={v}" if v else k for k, v in self.parameters.items())


@dataclass(frozen=True)
class ReceivableCodec:
    """A codec this endpoint can receive: what FFmpeg calls it and whether pass-through can forward it as is."""

    kind: str
    ffmpeg_name: str
    passable: bool


# Keyed by the lower-case rtpmap name.
RECEIVABLE: dict[str, ReceivableCodec] = {
    "opus": ReceivableCodec("audio", "opus", True),
    "pcma": ReceivableCodec("audio", "pcm_alaw", False),
    "pcmu": ReceivableCodec("audio", "pcm_mulaw", False),
    "h264": ReceivableCodec("video", "h264", True),
    "vp8": ReceivableCodec("video", "vp8", True),
    "vp9": ReceivableCodec("video", "vp9", False),
    "av1": ReceivableCodec("video", "av1", False),
}


@dataclass(frozen=True)
class OfferedMedia:
    """One m-section of the offer."""

    index: int
    kind: str  # "audio", "video", "application" …
    mid: str
    port: int
    direction: str  # "sendonly", "sendrecv", "recvonly", "inactive"
    codecs: tuple[Codec, ...]
    extensions: dict[str, int]  # header extension URI → id
    rids: tuple[str, ...]  # simulcast layers in the offer's order (HIGH first), () without simulcast
    ssrcs: tuple[int, ...]  # from a=ssrc lines, when the publisher announced them
    stereo: bool  # Opus sprop-stereo=1
    rtcp_rsize: bool
    lines: tuple[str, ...]

    @property
    def receivable(self) -> bool:
        """A section we receive media on: audio or video, not rejected (port 0), sending towards us."""
        return self.kind in ("audio", "video") and self.port != 0 and self.direction in ("sendonly", "sendrecv")


@dataclass(frozen=True)
class Fingerprint:
    algorithm: str
    value: str


@dataclass(frozen=True)
class WhipOffer:
    text: str
    media: tuple[OfferedMedia, ...]
    ice_ufrag: str
    ice_pwd: str
    ice_lite: bool
    fingerprints: tuple[Fingerprint, ...]
    setup: str  # the offerer's DTLS role: "actpass", "active", "passive"
    candidates: tuple[str, ...]  # "candidate:…" lines, each once
    session_id: str = ""

    def of_kind(self, kind: str) -> OfferedMedia | None:
        return next((m for m in self.media if m.kind == kind and m.receivable), None)

    @property
    def simulcast_rids(self) -> tuple[str, ...]:
        video = self.of_kind("video")
        return video.rids if video is not None else ()


def choose_codec(media: OfferedMedia, passthrough: bool) -> tuple[Codec, ReceivableCodec] | None:
    """The publisher's most preferred codec of ``media`` that the session can take, or None."""
    for codec in media.codecs:
        support = RECEIVABLE.get(codec.key)
        if support is None or support.kind != media.kind or (passthrough and not support.passable):
            continue
        if codec.key == "h264" and codec.parameters.get("packetization-mode", "0") not in ("0", "1"):
            continue  # mode 2 (interleaved) needs a decoding-order buffer nobody sends to WHIP endpoints
        return codec, support
    return None


def parse_offer(text: str) -> WhipOffer:
    """The offer, checked; IngressError with LiveKit's words when it cannot be taken (module docstring)."""
    session, sections = split_sections(text)
    if not session or not session[0].startswith("v="):
        raise invalid_offer("it does not start with v=")
    media = tuple(_media(index, section) for index, section in enumerate(sections))
    if not any(m.kind in ("audio", "video") for m in media):
        raise invalid_offer("no audio or video m-line")
    for kind in ("audio", "video"):
        if sum(1 for m in media if m.kind == kind) > 1:
            raise DUPLICATE_TRACK
    receivable = [m for m in media if m.receivable]
    if not receivable:
        raise invalid_offer("no m-line sends audio or video")
    if all(choose_codec(m, passthrough=False) is None for m in receivable):
        raise UNSUPPORTED_DECODE_FORMAT
    ufrag = _transport_value(session, receivable, "ice-ufrag")
    pwd = _transport_value(session, receivable, "ice-pwd")
    if not ufrag or not pwd:
        raise invalid_offer("no a=ice-ufrag/a=ice-pwd")
    fingerprints = tuple(
        Fingerprint(*value.split(None, 1))
        for value in _transport_values(session, receivable, "fingerprint")
        if len(value.split(None, 1)) == 2
    )
    if not fingerprints:
        raise invalid_offer("no a=fingerprint")
    setup = _transport_value(session, receivable, "setup") or "actpass"
    if setup not in ("actpass", "active", "passive"):
        raise invalid_offer(f"a=setup:{setup} is not a DTLS role")
    found: dict[str, None] = {}
    for section in sections:
        for value in attribute_values(section, "candidate"):
            found.setdefault(f"candidate:{value}")
    origin = session[1].split() if len(session) > 1 and session[1].startswith("o=") else []
    return WhipOffer(
        text=text,
        media=media,
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        ice_lite="a=ice-lite" in session or any("a=ice-lite" in m.lines for m in receivable),
        fingerprints=fingerprints,
        setup=setup,
        candidates=tuple(found),
        session_id=origin[1] if len(origin) > 1 else "",
    )


def _media(index: int, section: Sequence[str]) -> OfferedMedia:
    words = section[0][len("m=") :].split()
    if len(words) < 3:
        raise invalid_offer(f"m-line {index} is not 'm=<media> <port> <proto> <fmt> …'")
    try:
        port = int(words[1].split("/")[0])
    except ValueError:
        raise invalid_offer(f"m-line {index} has no port number") from None
    kind = section_kind(section)
    directions = [d for d in ("sendonly", "sendrecv", "recvonly", "inactive") if f"a={d}" in section]
    codecs = _codecs(section) if kind in ("audio", "video") else ()
    extensions: dict[str, int] = {}
    for value in attribute_values(section, "extmap"):
        parts = value.split()
        try:
            extension_id = int(parts[0].split("/")[0])
        except (ValueError, IndexError):
            raise invalid_offer(f"m-line {index} has a bad a=extmap:{value}") from None
        if len(parts) >= 2:
            extensions[parts[1]] = extension_id
    rids = _simulcast_rids(section, extensions) if kind == "video" else ()
    ssrcs: dict[int, None] = {}
    for value in attribute_values(section, "ssrc"):
        head = value.split(None, 1)[0]
        if head.isdigit():
            ssrcs.setdefault(int(head))
    stereo = any(c.key == "opus" and c.parameters.get("sprop-stereo") == "1" for c in codecs)
    return OfferedMedia(
        index=index,
        kind=kind,
        mid=section_mid(section) or str(index),
        port=port,
        direction=directions[0] if directions else "sendrecv",
        codecs=codecs,
        extensions=extensions,
        rids=rids,
        ssrcs=tuple(ssrcs),
        stereo=stereo,
        rtcp_rsize="a=rtcp-rsize" in section,
        lines=tuple(section),
    )


def _codecs(section: Sequence[str]) -> tuple[Codec, ...]:
    rtpmaps: dict[str, tuple[str, int, int]] = {}
    for value in attribute_values(section, "rtpmap"):
        pt, _, encoding = value.partition(" ")
        parts = encoding.split("/")
        try:
            rtpmaps[pt] = (parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 1)
        except (ValueError, IndexError):
            continue  # an rtpmap we cannot read names no codec we could take
    fmtps: dict[str, dict[str, str]] = {}
    for value in attribute_values(section, "fmtp"):
        pt, _, params = value.partition(" ")
        pairs = (item.strip().partition("=") for item in params.split(";") if item.strip())
        fmtps[pt] = {k.strip().lower(): v.strip() for k, _, v in pairs}
    feedback: dict[str, list[str]] = {}
    for value in attribute_values(section, "rtcp-fb"):
        pt, _, kind = value.partition(" ")
        feedback.setdefault(pt, []).append(kind.strip())
    codecs = []
    for pt in payload_types(section):
        if not pt.isdigit() or not 0 <= int(pt) <= 127:
            continue
        name, rate, channels = rtpmaps.get(pt) or _STATIC_PAYLOAD_TYPES.get(pt, ("", 0, 1))
        if not name:
            continue
        codecs.append(Codec(int(pt), name, rate, channels, fmtps.get(pt, {}), tuple(feedback.get(pt, ()))))
    return tuple(codecs)


# RFC 3551 static payload types a publisher may list without an a=rtpmap.
_STATIC_PAYLOAD_TYPES = {"0": ("PCMU", 8000, 1), "8": ("PCMA", 8000, 1)}


def _simulcast_rids(section: Sequence[str], extensions: dict[str, int]) -> tuple[str, ...]:
    values = attribute_values(section, "simulcast")
    if not values:
        return ()
    words = values[0].split()
    # livekit/ingress: exactly "send <rids>", 2 or 3 of them split by ";".
    if len(values) > 1 or len(words) != 2 or words[0] != "send":
        raise INVALID_SIMULCAST
    rids = words[1].split(";")
    if not 2 <= len(rids) <= MAX_SIMULCAST_LAYERS or any(not rid or "," in rid for rid in rids):
        raise INVALID_SIMULCAST
    rids = [rid.lstrip("~") for rid in rids]
    if len(set(rids)) != len(rids) or RID_URI not in extensions:
        raise INVALID_SIMULCAST
    declared = {rid.id for rid in rids_of(section) if rid.direction == "send"}
    if declared and not set(rids) <= declared:
        raise INVALID_SIMULCAST
    return tuple(rids)


def _transport_values(session: Sequence[str], media: Sequence[OfferedMedia], name: str) -> list[str]:
    """A transport attribute from the first receivable section that has it, else from the session level."""
    for m in media:
        values = attribute_values(m.lines, name)
        if values:
            return values
    return attribute_values(session, name)


def _transport_value(session: Sequence[str], media: Sequence[OfferedMedia], name: str) -> str:
    values = _transport_values(session, media, name)
    return values[0] if values else ""
