"""SDP reads and edits on real SDP: an offer and answer aiortc produces here, and an offer as a browser sends it."""

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import SessionDescription

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from pyingress.webrtc.sdp import (
    MID_URI,
    RID_URI,
    Rid,
    add_extmap,
    add_rids,
    add_rtcp_feedback,
    add_simulcast_to_offer,
    attribute_values,
    bundle_candidates,
    candidates,
    codec_name,
    codec_payload_type,
    edit_section,
    extmap_id,
    find_section,
    free_extmap_id,
    join_sections,
    media_sections,
    negotiated_codec,
    payload_types,
    rids_of,
    section_kind,
    section_mid,
    set_fmtp,
    set_opus_parameters,
    simulcast_of,
    split_sections,
    ssrc_cname,
    without_attributes,
)

# Every bundled m-section of a browser's offer repeats these (only the first carries the candidates).
_TRANSPORT = [
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Zx8q",
    "a=ice-pwd:4mN0x1R9vT0d8aQeY2wZ7kLp",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09"
    ":5E:D6:BC",
    "a=setup:actpass",
]
# What a browser (Chrome-like) offers a WHIP endpoint: rid simulcast on one video m-line, RTX, RED for audio.
BROWSER_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
        *_TRANSPORT[:2],
        "a=candidate:3061 1 udp 2122260223 192.168.1.20 51432 typ host generation 0 network-id 1",
        "a=candidate:1209 1 udp 1686052607 203.0.113.7 51432 typ srflx raddr 192.168.1.20 rport 51432",
        *_TRANSPORT[2:],
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly",
        "a=msid:stream mic",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=ssrc:1001 cname:u2Qp4xQeVvH3b7Jd",
        "a=ssrc:1001 msid:stream mic",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103",
        *_TRANSPORT,
        "a=mid:1",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "a=sendonly",
        "a=msid:stream camera",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 ccm fir",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 nack",
        "a=rtcp-fb:102 nack pli",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:103 rtx/90000",
        "a=fmtp:103 apt=102",
        "a=rid:q send",
        "a=rid:h send max-width=640;max-height=360",
        "a=rid:f send",
        "a=simulcast:send q;h;~f",
        "",
    ]
)


@pytest.fixture
async def aiortc_pair() -> AsyncIterator[tuple[str, str]]:
    """(offer, answer) of a real aiortc exchange: sendonly Opus + video, loopback candidates."""
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    sender.addTransceiver(AudioStreamTrack(), direction="sendonly")
    sender.addTransceiver(VideoStreamTrack(), direction="sendonly")
    try:
        with gathering_from(LOOPBACK_ADDRESSES):
            await sender.setLocalDescription(await sender.createOffer())
            await receiver.setRemoteDescription(sender.localDescription)
            await receiver.setLocalDescription(await receiver.createAnswer())
        yield sender.localDescription.sdp, receiver.localDescription.sdp
    finally:
        await sender.close()
        await receiver.close()


def test_split_and_join_give_back_the_sdp(aiortc_pair: tuple[str, str]) -> None:
    for sdp in (*aiortc_pair, BROWSER_OFFER):
        session, media = split_sections(sdp)
        assert session[0] == "v=0" and all(not line.startswith("m=") for line in session)
        assert [section[0][:7] for section in media] == ["m=audio", "m=video"]
        assert join_sections(session, media) == sdp
        assert media_sections(sdp) == media
    # LF-only text and blank lines are read too; joining writes CRLF
    assert (
        join_sections(*split_sections("v=0\n\nm=audio 9 RTP/AVP 0\na=mid:a\n"))
        == "v=0\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\n"
    )


def test_sections_are_found_and_read_by_mid(aiortc_pair: tuple[str, str]) -> None:
    offer, _ = aiortc_pair
    audio, video = media_sections(offer)
    assert (section_kind(audio), section_mid(audio)) == ("audio", "0")
    assert (section_kind(video), section_mid(video)) == ("video", "1")
    assert find_section(offer, "1") == video
    assert find_section(offer, "7") is None
    assert attribute_values(audio, "mid") == ["0"]
    assert attribute_values(audio, "nothing") == []


def test_codecs_of_a_section() -> None:
    audio, video = media_sections(BROWSER_OFFER)
    assert payload_types(video) == ["96", "97", "102", "103"]
    assert [codec_name(video, pt) for pt in payload_types(video)] == ["VP8", "rtx", "H264", "rtx"]
    assert codec_name(video, "35") is None
    assert codec_payload_type(video, "h264") == "102"
    assert codec_payload_type(video, "rtx") == "97"  # the most preferred one
    assert codec_payload_type(audio, "OPUS") == "111"
    assert codec_payload_type(audio, "vp8") is None


def test_rids_and_simulcast_of_a_browser_offer() -> None:
    audio, video = media_sections(BROWSER_OFFER)
    assert rids_of(video) == (Rid("q", "send"), Rid("h", "send", "max-width=640;max-height=360"), Rid("f", "send"))
    assert simulcast_of(video) == {"send": ("q", "h", "f")}  # "~f": paused, still one of the rids
    assert rids_of(audio) == () and simulcast_of(audio) == {}
    assert rids_of(["m=video 9 RTP/AVP 96", "a=rid:q"]) == ()  # no direction: no stream
    # both directions, and alternatives (RFC 8853 §5.1)
    assert simulcast_of(["m=video 9 RTP/AVP 96", "a=simulcast:send 1,2;3 recv 4"]) == {
        "send": ("1", "2", "3"),
        "recv": ("4",),
    }


def test_header_extension_ids(aiortc_pair: tuple[str, str]) -> None:
    offer, _ = aiortc_pair
    video = find_section(offer, "1")
    assert video is not None
    assert extmap_id(video, MID_URI) is not None
    assert extmap_id(video, RID_URI) is None  # aiortc parses it but never offers it
    used = {int(value.split()[0]) for value in attribute_values(offer.split("\r\n"), "extmap")}
    assert free_extmap_id(offer) not in used
    _, browser_video = media_sections(BROWSER_OFFER)
    assert extmap_id(browser_video, RID_URI) == 10
    assert extmap_id(["a=extmap:5/sendonly " + RID_URI], RID_URI) == 5
    with pytest.raises(ValueError):
        free_extmap_id("".join(f"a=extmap:{i} urn:x:{i}\r\n" for i in range(1, 15)))


def test_cname_and_candidates(aiortc_pair: tuple[str, str]) -> None:
    offer, _ = aiortc_pair
    assert ssrc_cname(offer) is not None
    assert ssrc_cname(BROWSER_OFFER) == "u2Qp4xQeVvH3b7Jd"
    assert ssrc_cname("v=0\r\n") is None
    audio, _ = media_sections(BROWSER_OFFER)
    assert candidates(audio) == [
        "candidate:3061 1 udp 2122260223 192.168.1.20 51432 typ host generation 0 network-id 1",
        "candidate:1209 1 udp 1686052607 203.0.113.7 51432 typ srflx raddr 192.168.1.20 rport 51432",
    ]
    mid, ours = bundle_candidates(offer)
    assert mid == "0" and ours and all(" 127.0.0.1 " in candidate for candidate in ours)
    assert bundle_candidates("v=0\r\n") == (None, [])


def test_section_edits_put_lines_where_they_belong() -> None:
    _, video = media_sections(BROWSER_OFFER)
    bare = without_attributes(video, "rid", "simulcast", "extmap")
    assert rids_of(bare) == () and simulcast_of(bare) == {} and attribute_values(bare, "extmap") == []
    assert len(bare) == len(video) - 7
    with_extmap = add_extmap(bare, 3, RID_URI)
    assert with_extmap[with_extmap.index("a=mid:1") + 1] == f"a=extmap:3 {RID_URI}"
    assert add_extmap(["m=video 9 RTP/AVP 96"], 3, RID_URI)[-1] == f"a=extmap:3 {RID_URI}"
    after_last = add_extmap(video, 12, "urn:x")
    assert after_last[after_last.index("a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id") + 1] == (
        "a=extmap:12 urn:x"
    )
    fir = add_rtcp_feedback(video, "102", "ccm fir")
    assert fir[fir.index("a=rtcp-fb:102 nack pli") + 1] == "a=rtcp-fb:102 ccm fir"
    assert add_rtcp_feedback(video, "96", "ccm fir") == video  # already there
    goog = add_rtcp_feedback(video, "97", "nack")  # no feedback yet: right after the rtpmap
    assert goog[goog.index("a=rtpmap:97 rtx/90000") + 1] == "a=rtcp-fb:97 nack"
    with pytest.raises(ValueError):
        add_rtcp_feedback(video, "35", "nack")
    fmtp = set_fmtp(video, "102", ["packetization-mode=1"])
    assert attribute_values(fmtp, "fmtp").count("102 packetization-mode=1") == 1
    assert fmtp[fmtp.index("a=rtpmap:102 H264/90000") + 1] == "a=fmtp:102 packetization-mode=1"
    assert len(fmtp) == len(video)


def test_a_whip_style_answer_gets_recv_rids_by_mid() -> None:
    """What the WHIP door will do: read the offer's rids, answer them on the same mid."""
    _, video = media_sections(BROWSER_OFFER)
    wanted = [rid.id for rid in rids_of(video)]
    answer = edit_section(
        BROWSER_OFFER, "1", lambda section: add_rids(without_attributes(section, "rid"), wanted, "recv")
    )
    answered = find_section(answer, "1")
    assert answered is not None
    assert answered[-4:] == ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f"]
    assert find_section(answer, "0") == find_section(BROWSER_OFFER, "0")
    with pytest.raises(ValueError):
        edit_section(BROWSER_OFFER, "2", list)


def test_simulcast_offer_from_aiortc_and_from_a_browser_like_one(aiortc_pair: tuple[str, str]) -> None:
    offer, _ = aiortc_pair
    munged = add_simulcast_to_offer(offer, "1", ["q", "h"])
    video = find_section(munged, "1")
    assert video is not None
    assert simulcast_of(video) == {"send": ("q", "h")}
    assert attribute_values(video, "ssrc") == [] and attribute_values(video, "ssrc-group") == []
    assert extmap_id(video, RID_URI) == free_extmap_id(offer)
    for pt in payload_types(video):
        assert (f"a=rtcp-fb:{pt} ccm fir" in video) == (codec_name(video, pt) != "rtx")
    assert SessionDescription.parse(munged).media[1].rtp.muxId == "1"  # aiortc still reads it
    # a browser's offer: its rid extension id kept, no FIR twice, none for RTX, without FIR on request
    browser = find_section(add_simulcast_to_offer(BROWSER_OFFER, "1", ["q"]), "1")
    assert browser is not None
    assert attribute_values(browser, "extmap").count(f"10 {RID_URI}") == 1
    assert browser.count("a=rtcp-fb:96 ccm fir") == 1 and "a=rtcp-fb:102 ccm fir" in browser
    assert not any(line.startswith(("a=rtcp-fb:97 ", "a=rtcp-fb:103 ")) for line in browser)
    no_fir = find_section(add_simulcast_to_offer(offer, "1", ["q"], request_fir=False), "1")
    assert no_fir is not None and not any(line.endswith(" ccm fir") for line in no_fir)
    with pytest.raises(ValueError):
        add_simulcast_to_offer(offer, "0", ["q"])  # audio


def test_opus_parameters_on_a_real_offer(aiortc_pair: tuple[str, str]) -> None:
    offer, _ = aiortc_pair
    stereo = find_section(set_opus_parameters(offer, "0", stereo=True, dtx=True), "0")
    assert stereo is not None
    pt = codec_payload_type(stereo, "opus")
    assert pt is not None
    assert stereo[stereo.index(f"a=rtpmap:{pt} opus/48000/2") + 1] == (
        f"a=fmtp:{pt} minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;usedtx=1"
    )
    assert set_opus_parameters(offer, "1", stereo=True, dtx=True) == offer  # video: untouched
    assert set_opus_parameters(offer, "5", stereo=True, dtx=True) == offer  # no such mid
    no_opus = "v=0\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\n"
    assert set_opus_parameters(no_opus, "0", stereo=False, dtx=False) == no_opus


def test_negotiated_codec_from_a_real_aiortc_answer(aiortc_pair: tuple[str, str]) -> None:
    _, answer = aiortc_pair
    negotiated = negotiated_codec(answer, "1", "vp8")  # aiortc prefers VP8
    video = find_section(answer, "1")
    assert video is not None
    assert str(negotiated.payload_type) == codec_payload_type(video, "vp8")
    assert negotiated.extension_id(MID_URI) == extmap_id(video, MID_URI)
    assert negotiated.extension_id(RID_URI) is None
    with pytest.raises(ValueError):
        negotiated_codec(answer, "0", "vp8")
    with pytest.raises(ValueError):
        negotiated_codec(answer, "9", "vp8")


async def test_a_browser_offer_is_answered_by_aiortc_after_the_edits() -> None:
    """The edited text stays SDP a real peer accepts."""
    receiver = RTCPeerConnection()
    try:
        offer = set_opus_parameters(BROWSER_OFFER, "0", stereo=True, dtx=False)
        await receiver.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        with gathering_from(LOOPBACK_ADDRESSES):
            await receiver.setLocalDescription(await receiver.createAnswer())
        assert [section_mid(section) for section in media_sections(receiver.localDescription.sdp)] == ["0", "1"]
    finally:
        await receiver.close()
