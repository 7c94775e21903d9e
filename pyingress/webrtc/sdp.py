"""Every SDP read and edit of ours, as pure functions over SDP text.

aiortc (pinned 1.16.0) parses and writes SDP through ``aiortc.sdp.SessionDescription``, but its model has no
``a=rid``/``a=simulcast`` (peers.md §5) and loses lines it does not know, so what LiveKit and browsers need beyond it
is edited in the text: the offer's rid simulcast lines, our Opus fmtp, the first m-section's candidates.  Where the
model serves (the answer's codecs and header extension ids), it is used.

An SDP splits into its session lines and one list of lines per m-section (``split_sections``); readers take one
section, editors return a new one, and ``edit_section`` puts the edited section back by its mid.  The same pieces
serve the room publisher (send: add rids to our offer) and the WHIP door (receive: read the rids of a publisher's
offer with ``rids_of``/``simulcast_of``, answer them with ``add_rids(..., "recv")``).
"""

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"

# The one-byte RTP header extension form (RFC 8285) has ids 1 to 14.
_EXTMAP_IDS = range(1, 15)

Section = list[str]  # one m-section's lines, the m= line first, no line endings


# ---------------------------------------------------------------------------------------------------------------
# Splitting and joining


def split_sections(sdp: str) -> tuple[list[str], list[Section]]:
    """The session-level lines and the lines of each m-section, in order (blank lines dropped)."""
    session: list[str] = []
    media: list[Section] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def join_sections(session: Sequence[str], media: Iterable[Sequence[str]]) -> str:
    """SDP text from session lines and m-sections, CRLF-terminated lines (RFC 8866 §5)."""
    return "\r\n".join([*session, *(line for section in media for line in section)]) + "\r\n"


def media_sections(sdp: str) -> list[Section]:
    return split_sections(sdp)[1]


def find_section(sdp: str, mid: str) -> Section | None:
    """The m-section whose ``a=mid`` is ``mid``."""
    return next((section for section in media_sections(sdp) if section_mid(section) == mid), None)


def edit_section(sdp: str, mid: str, edit: Callable[[Section], Section]) -> str:
    """The SDP with the m-section ``mid`` replaced by ``edit(section)``; ValueError when no section has that mid."""
    session, media = split_sections(sdp)
    index = next((i for i, section in enumerate(media) if section_mid(section) == mid), None)
    if index is None:
        raise ValueError(f"SDP has no m-section with mid {mid!r}")
    media[index] = edit(media[index])
    return join_sections(session, media)


# ---------------------------------------------------------------------------------------------------------------
# Reading one section


def attribute_values(section: Iterable[str], name: str) -> list[str]:
    """The values of every ``a=<name>:<value>`` line, in order."""
    prefix = f"a={name}:"
    return [line[len(prefix) :].strip() for line in section if line.startswith(prefix)]


def section_kind(section: Sequence[str]) -> str:
    """The media kind the m= line names: "audio", "video", "application" …"""
    return section[0][len("m=") :].split(" ", 1)[0]


def section_mid(section: Sequence[str]) -> str | None:
    return next(iter(attribute_values(section, "mid")), None)


def payload_types(section: Sequence[str]) -> list[str]:
    """The payload types the m= line lists, in its order of preference."""
    return section[0].split()[3:]


def codec_payload_type(section: Sequence[str], codec: str) -> str | None:
    """The most preferred payload type whose ``a=rtpmap`` names ``codec`` (any case: "opus", "h264", "rtx")."""
    wanted = codec.lower()
    return next((pt for pt in payload_types(section) if (codec_name(section, pt) or "").lower() == wanted), None)


def codec_name(section: Sequence[str], payload_type: str) -> str | None:
    """The encoding name ``a=rtpmap`` gives ``payload_type`` ("opus", "H264", "rtx" …), as written."""
    prefix = f"a=rtpmap:{payload_type} "
    return next((line[len(prefix) :].split("/", 1)[0] for line in section if line.startswith(prefix)), None)


def candidates(section: Sequence[str]) -> list[str]:
    """The section's ICE candidates as ``candidate:…`` (the form trickle messages carry)."""
    return [line[len("a=") :] for line in section if line.startswith("a=candidate:")]


@dataclass(frozen=True)
class Rid:
    """One ``a=rid:<id> <direction> [<restrictions>]`` line (RFC 8851)."""

    id: str
    direction: str  # "send" | "recv"
    restrictions: str = ""  # as written, e.g. "pt=96;max-width=1280"


def rids_of(section: Sequence[str]) -> tuple[Rid, ...]:
    """The section's rids in order; a line without a direction names no usable stream and is skipped."""
    words = (value.split() for value in attribute_values(section, "rid"))
    return tuple(Rid(w[0], w[1], " ".join(w[2:])) for w in words if len(w) >= 2)


def simulcast_of(section: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The ``a=simulcast`` line (RFC 8853) as direction → rids in order: ``send q;h;f`` → {"send": ("q", "h", "f")}.

    Alternatives (``q,h``) are listed one after the other; a paused stream's ``~`` is dropped.
    """
    directions: dict[str, tuple[str, ...]] = {}
    for value in attribute_values(section, "simulcast"):
        words = value.split()
        for direction, streams in zip(words[::2], words[1::2], strict=False):
            directions[direction] = tuple(rid.lstrip("~") for rid in re.split(r"[;,]", streams) if rid)
    return directions


def extmap_id(section: Iterable[str], uri: str) -> int | None:
    """The id an ``a=extmap`` line gives the header extension ``uri``."""
    for value in attribute_values(section, "extmap"):
        number, *rest = value.split()
        if rest and rest[0] == uri:
            return int(number.split("/")[0])
    return None


def free_extmap_id(sdp: str) -> int:
    """A header extension id no m-section uses: with BUNDLE the ids are shared by all of them (RFC 8843 §9.2)."""
    used = {int(m.group(1)) for m in re.finditer(r"^a=extmap:(\d+)", sdp, re.MULTILINE)}
    free = next((candidate for candidate in _EXTMAP_IDS if candidate not in used), None)
    if free is None:
        raise ValueError("no free one-byte RTP header extension id left in the SDP")
    return free


def ssrc_cname(sdp: str) -> str | None:
    """The CNAME the first ``a=ssrc`` line announces (aiortc writes one per sender)."""
    m = re.search(r"^a=ssrc:\d+ cname:(\S+)", sdp, re.MULTILINE)
    return m.group(1) if m else None


def bundle_candidates(sdp: str) -> tuple[str | None, list[str]]:
    """The mid of the first m-section and its candidates: with max-bundle it carries the transport of all."""
    media = media_sections(sdp)
    if not media:
        return None, []
    return section_mid(media[0]), candidates(media[0])


# ---------------------------------------------------------------------------------------------------------------
# Editing one section (each returns a new list)


def without_attributes(section: Sequence[str], *names: str) -> Section:
    """The section without its ``a=<name>:`` lines."""
    prefixes = tuple(f"a={name}:" for name in names)
    return [line for line in section if not line.startswith(prefixes)]


def add_extmap(section: Sequence[str], extension_id: int, uri: str) -> Section:
    """An ``a=extmap`` line after the last one (or after ``a=mid``, or at the end)."""
    anchor = max((i for i, line in enumerate(section) if line.startswith(("a=extmap:", "a=mid:"))), default=None)
    at = len(section) if anchor is None else anchor + 1
    return [*section[:at], f"a=extmap:{extension_id} {uri}", *section[at:]]


def add_rtcp_feedback(section: Sequence[str], payload_type: str, feedback: str) -> Section:
    """``a=rtcp-fb:<pt> <feedback>`` after that codec's last rtcp-fb (or its rtpmap), unless already there."""
    line = f"a=rtcp-fb:{payload_type} {feedback}"
    if line in section:
        return list(section)
    own = [i for i, text in enumerate(section) if text.startswith(f"a=rtcp-fb:{payload_type} ")]
    own = own or [i for i, text in enumerate(section) if text.startswith(f"a=rtpmap:{payload_type} ")]
    if not own:
        raise ValueError(f"payload type {payload_type} has no a=rtpmap to put feedback after")
    at = own[-1] + 1
    return [*section[:at], line, *section[at:]]


def set_fmtp(section: Sequence[str], payload_type: str, parameters: Sequence[str]) -> Section:
    """The codec's ``a=fmtp`` replaced by one listing ``parameters``, right after its rtpmap."""
    edited: Section = []
    for line in section:
        if line.startswith(f"a=fmtp:{payload_type} "):
            continue
        edited.append(line)
        if line.startswith(f"a=rtpmap:{payload_type} "):
            edited.append(f"a=fmtp:{payload_type} " + ";".join(parameters))
    return edited


def add_rids(section: Sequence[str], rids: Sequence[str], direction: str) -> Section:
    """``a=rid:<rid> <direction>`` per rid and the ``a=simulcast:<direction>`` line listing them, at the end."""
    return [*section, *(f"a=rid:{rid} {direction}" for rid in rids), f"a=simulcast:{direction} " + ";".join(rids)]


# ---------------------------------------------------------------------------------------------------------------
# What the room publisher's offer needs


def add_simulcast_to_offer(sdp: str, mid: str, rids: Sequence[str], *, request_fir: bool = True) -> str:
    """The offer with the m-line ``mid`` turned into a rid simulcast send section.

    Adds ``a=extmap`` for rtp-stream-id (unless present), ``a=rid:<rid> send`` per layer and ``a=simulcast:send``;
    drops aiortc's ``a=ssrc``/``a=ssrc-group`` lines there, since each layer's SSRC is learnt from its rid-tagged
    packets (as with browsers); adds ``ccm fir`` feedback so a receiver may ask for a keyframe either way.
    """

    def simulcast_section(section: Section) -> Section:
        if section_kind(section) != "video":
            raise ValueError(f"m-line {mid!r} is not video")
        edited = without_attributes(section, "ssrc", "ssrc-group")
        if extmap_id(edited, RID_URI) is None:
            edited = add_extmap(edited, free_extmap_id(sdp), RID_URI)
        if request_fir:
            for pt in payload_types(section):
                if codec_name(edited, pt) != "rtx":  # a retransmission stream is no picture to refresh
                    edited = add_rtcp_feedback(edited, pt, "ccm fir")
        return add_rids(edited, rids, "send")

    return edit_section(sdp, mid, simulcast_section)


def set_opus_parameters(sdp: str, mid: str, *, stereo: bool, dtx: bool) -> str:
    """The offer with an Opus fmtp line on the audio m-line ``mid`` (aiortc writes none); else unchanged.

    ``stereo``/``sprop-stereo`` tell receivers to decode two channels, ``usedtx`` that silence may be sent as DTX;
    ``useinbandfec`` and ``minptime=10`` are what browsers offer.
    """
    section = find_section(sdp, mid)
    if section is None or section_kind(section) != "audio":
        return sdp
    pt = codec_payload_type(section, "opus")
    if pt is None:
        return sdp
    parameters = ["minptime=10", "useinbandfec=1"]
    if stereo:
        parameters += ["stereo=1", "sprop-stereo=1"]
    if dtx:
        parameters.append("usedtx=1")
    return edit_section(sdp, mid, lambda opus: set_fmtp(opus, pt, parameters))


# ---------------------------------------------------------------------------------------------------------------
# What the answer accepted (aiortc's model parses it)


@dataclass(frozen=True)
class NegotiatedCodec:
    """What the answer accepted for one of our m-lines: the codec's payload type and the header extension ids."""

    payload_type: int
    codec: str  # "H264" / "VP8" / "opus"
    extensions: tuple[RTCRtpHeaderExtensionParameters, ...]

    def extension_id(self, uri: str) -> int | None:
        return next((ext.id for ext in self.extensions if ext.uri == uri), None)


def negotiated_codec(answer_sdp: str, mid: str, codec: str) -> NegotiatedCodec:
    """Payload type of ``codec`` ("h264"/"vp8"/"opus") and the extension ids of the answer's m-line ``mid``."""
    description = aiortc_sdp.SessionDescription.parse(answer_sdp)
    media = next((m for m in description.media if m.rtp.muxId == mid), None)
    if media is None:
        raise ValueError(f"answer has no m-line with mid {mid!r}")
    wanted = codec.lower()
    chosen = next((c for c in media.rtp.codecs if c.name.lower() == wanted), None)
    if chosen is None or chosen.payloadType is None:
        offered = [c.name for c in media.rtp.codecs]
        raise ValueError(f"answer for mid {mid!r} did not accept {codec} (it has {offered})")
    return NegotiatedCodec(chosen.payloadType, chosen.name, tuple(media.rtp.headerExtensions))
