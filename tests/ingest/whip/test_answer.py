"""The answer we write to a WHIP offer, read back by aiortc's SDP parser (as a publisher would read it)."""

from aiortc.sdp import SessionDescription

from pyingress.ingest.whip.answer import LocalTransport, build_answer, dtls_role
from pyingress.ingest.whip.offer import choose_codec, parse_offer
from pyingress.webrtc.sdp import attribute_values, media_sections
from tests.ingest.whip.offers import BROWSER_OFFER, SIMULCAST_OFFER, audio_section, offer, video_section

LOCAL = LocalTransport(
    ice_ufrag="abcd",
    ice_pwd="0123456789abcdef01234567",
    fingerprint=("sha-256", "AA:" * 31 + "AA"),
    candidates=("candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",),
)


def answer_for(text: str, passthrough: bool = True) -> str:
    parsed = parse_offer(text)
    chosen = {}
    for media in parsed.media:
        picked = choose_codec(media, passthrough) if media.receivable else None
        if picked is not None:
            chosen[media.index] = picked[0]
    return build_answer(parsed, LOCAL, chosen)


def test_a_simulcast_answer_receives_every_rid_with_one_codec_per_section() -> None:
    answer = answer_for(SIMULCAST_OFFER)
    parsed = SessionDescription.parse(answer)
    assert parsed.group[0].items == ["0", "1"]
    audio, video = parsed.media
    assert [c.name for c in audio.rtp.codecs] == ["opus"] and audio.direction == "recvonly"
    assert [c.name for c in video.rtp.codecs] == ["VP8"] and video.direction == "recvonly"
    assert {e.uri: e.id for e in video.rtp.headerExtensions} == {
        "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id": 10,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
    }
    section = media_sections(answer)[1]
    assert attribute_values(section, "rid") == ["f recv", "h recv", "q recv"]
    assert attribute_values(section, "simulcast") == ["recv f;h;q"]
    assert attribute_values(section, "rtcp-fb") == ["96 nack", "96 nack pli", "96 ccm fir", "96 goog-remb"]
    # REMB answered: Chromium starts its encoder where our REMB will put its estimate anyway.
    assert attribute_values(section, "fmtp") == ["96 x-google-start-bitrate=2500"]
    assert video.dtls is not None and video.dtls.role == "server"  # a=setup:passive: the publisher connects
    assert video.ice is not None and video.ice.usernameFragment == "abcd"
    assert [c.ip for c in video.ice_candidates] == ["127.0.0.1"]


def test_without_simulcast_no_rid_extension_is_answered() -> None:
    answer = answer_for(BROWSER_OFFER)
    assert "rtp-stream-id" not in answer and "a=simulcast" not in answer
    assert "a=fmtp:111 minptime=10;useinbandfec=1" in answer


def test_a_section_we_do_not_take_is_rejected_with_port_zero() -> None:
    text = offer(video_section("0"), ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:1", "a=sendrecv"])
    answer = answer_for(text)
    assert media_sections(answer)[1][0] == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"
    assert "a=group:BUNDLE 0\r\n" in answer


def test_dtls_role_answers_the_offer() -> None:
    assert (dtls_role("actpass"), dtls_role("active"), dtls_role("passive")) == ("server", "server", "client")


TRANSPORT_CC_EXTMAP = "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def test_transport_cc_is_answered_with_its_extension_and_then_remb_is_not() -> None:
    text = offer(audio_section(extra=[TRANSPORT_CC_EXTMAP]), video_section(extra=[TRANSPORT_CC_EXTMAP]))
    audio, video = media_sections(answer_for(text))
    assert attribute_values(video, "rtcp-fb") == ["96 nack", "96 nack pli", "96 ccm fir", "96 transport-cc"]
    assert TRANSPORT_CC_EXTMAP in video and TRANSPORT_CC_EXTMAP in audio
    assert attribute_values(audio, "rtcp-fb") == ["111 transport-cc"]
    assert attribute_values(video, "fmtp") == ["96 x-google-start-bitrate=2500"]


def test_transport_cc_without_its_extension_is_not_answered() -> None:
    """No sequence numbers, no feedback: a sender told to expect it would lower its estimate step by step."""
    answer = answer_for(offer(audio_section(), video_section()))
    assert "transport-cc" not in answer and "transport-wide-cc" not in answer
    assert "a=rtcp-fb:96 goog-remb" in answer
