"""The WHIP offer check: what is taken from a browser's offer, and each refusal with livekit/ingress's words."""

import pytest

from pyingress.control.errors import IngressError
from pyingress.ingest.whip.offer import choose_codec, parse_offer
from tests.ingest.whip.offers import BROWSER_OFFER, SIMULCAST_OFFER, audio_section, offer, video_section


def refusal(text: str) -> tuple[int, str]:
    with pytest.raises(IngressError) as caught:
        parse_offer(text)
    return caught.value.http_status, caught.value.message


def test_a_browser_offer_is_read_whole() -> None:
    parsed = parse_offer(BROWSER_OFFER)
    audio, video = parsed.of_kind("audio"), parsed.of_kind("video")
    assert audio is not None and video is not None
    assert (audio.mid, video.mid) == ("0", "1")
    assert [c.name for c in video.codecs] == ["VP8", "rtx", "H264", "rtx"]
    assert video.extensions["urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"] == 10
    assert (parsed.ice_ufrag, parsed.ice_pwd, parsed.setup) == ("Zx8q", "4mN0x1R9vT0d8aQeY2wZ7kLp", "actpass")
    assert parsed.fingerprints[0].algorithm == "sha-256"
    assert parsed.candidates == ("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",)
    assert not audio.stereo and audio.rtcp_rsize and parsed.simulcast_rids == ()


def test_codecs_follow_the_publishers_preference_among_those_the_mode_can_take() -> None:
    parsed = parse_offer(offer(audio_section(), video_section(payloads="98 45 96 102")))
    video, audio = parsed.of_kind("video"), parsed.of_kind("audio")
    assert video is not None and audio is not None
    transcoded = choose_codec(video, passthrough=False)
    passed = choose_codec(video, passthrough=True)
    assert transcoded is not None and transcoded[0].name == "VP9" and transcoded[1].ffmpeg_name == "vp9"
    assert passed is not None and passed[0].name == "VP8"
    opus = choose_codec(audio, passthrough=True)
    assert opus is not None and opus[0].payload_type == 111


def test_pcma_alone_is_taken_for_transcoding_only() -> None:
    pcma = [line.replace("111 63 9 0 8", "8") for line in audio_section()]
    parsed = parse_offer(offer(pcma))
    audio = parsed.of_kind("audio")
    assert audio is not None and choose_codec(audio, passthrough=True) is None
    chosen = choose_codec(audio, passthrough=False)
    assert chosen is not None and chosen[1].ffmpeg_name == "pcm_alaw"


def test_simulcast_rids_keep_the_offer_order() -> None:
    assert parse_offer(SIMULCAST_OFFER).simulcast_rids == ("f", "h", "q")
    assert parse_offer(offer(video_section(rids=("hi", "lo")))).simulcast_rids == ("hi", "lo")


@pytest.mark.parametrize(
    "extra",
    [
        ["a=rid:a send", "a=rid:b send", "a=rid:c send", "a=rid:d send", "a=simulcast:send a;b;c;d"],
        ["a=rid:a send", "a=simulcast:send a"],
        ["a=rid:a send", "a=rid:b send", "a=simulcast:recv a;b"],
        ["a=rid:a send", "a=rid:b send", "a=simulcast:send a,b;c"],
        ["a=simulcast:send a;a"],
        ["a=rid:a send", "a=rid:b send", "a=simulcast: send a;b extra"],
    ],
)
def test_invalid_simulcast_is_refused_as_livekit_does(extra: list[str]) -> None:
    assert refusal(offer(audio_section(), video_section(extra=extra))) == (406, "invalid simulcast configuration")


def test_simulcast_without_the_rid_extension_cannot_be_told_apart() -> None:
    section = [line for line in video_section(rids=("f", "q")) if "rtp-stream-id" not in line]
    assert refusal(offer(section)) == (406, "invalid simulcast configuration")


def test_two_tracks_of_a_kind_are_refused() -> None:
    assert refusal(offer(video_section("0"), video_section("1"))) == (406, "more than 1 track with given media kind")
    assert refusal(offer(audio_section("0"), audio_section("1"))) == (406, "more than 1 track with given media kind")


def test_an_offer_of_codecs_we_cannot_take_is_unsupported() -> None:
    g722 = [line.replace("111 63 9 0 8", "9") for line in audio_section()]
    assert refusal(offer(g722)) == (406, "unsupported format for the source media")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it does not start with v="),
        ("hello", "it does not start with v="),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no audio or video m-line"),
        (offer(["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0"]), "no audio or video m-line"),
        (offer([line for line in audio_section() if not line.startswith("a=ice-")]), "no a=ice-ufrag/a=ice-pwd"),
        (offer([line for line in audio_section() if not line.startswith("a=fingerprint")]), "no a=fingerprint"),
        (offer([line.replace("a=sendonly", "a=recvonly") for line in audio_section()]), "no m-line sends"),
        (offer(["m=audio x UDP/TLS/RTP/SAVPF 111", "a=mid:0"]), "has no port number"),
    ],
)
def test_what_is_not_an_offer_is_a_bad_request(text: str, why: str) -> None:
    status, message = refusal(text)
    assert status == 400 and message.startswith("invalid SDP offer: ") and why in message
