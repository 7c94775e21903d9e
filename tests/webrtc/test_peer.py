"""The publisher peer connection's offer: one codec per kind, Opus parameters, simulcast lines, the track ids."""

import re

import pytest

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES
from pyingress.webrtc.peer import PublisherPeer
from pyingress.webrtc.sdp import set_opus_parameters
from pyingress.webrtc.simulcast import assign_rids


def _media(sdp: str, kind: str) -> list[str]:
    sections = re.split(r"\r\n(?=m=)", sdp)
    return [line for line in next(s for s in sections if s.startswith(f"m={kind}")).split("\r\n") if line]


@pytest.mark.parametrize(("codec", "rtpmap"), [("h264", "H264/90000"), ("vp8", "VP8/90000")])
async def test_offer_has_one_codec_per_kind_simulcast_and_opus_parameters(codec: str, rtpmap: str) -> None:
    peer = PublisherPeer(
        host_addresses=LOOPBACK_ADDRESSES, audio=(2, True), video_codec=codec, video_encodings=assign_rids([0, 2])
    )
    try:
        offer = await peer.create_offer()
        audio, video = _media(offer, "audio"), _media(offer, "video")
        assert [line for line in audio if line.startswith("a=rtpmap:")] == [
            f"a=rtpmap:{audio[0].split()[3]} opus/48000/2"
        ]
        assert f"a=fmtp:{audio[0].split()[3]} minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;usedtx=1" in audio
        video_maps = [line.split(" ", 1)[1] for line in video if line.startswith("a=rtpmap:")]
        assert video_maps == [rtpmap]  # no RTX: retransmissions go out on the layer's own SSRC
        if codec == "h264":
            assert any("profile-level-id=42e01f" in line and "packetization-mode=1" in line for line in video)
        assert "a=sendonly" in audio and "a=sendonly" in video
        assert video[-3:] == ["a=rid:q send", "a=rid:h send", "a=simulcast:send q;h"]
        # LiveKit matches AddTrackRequest.cid against the msid track ids
        assert any(line.startswith("a=msid:") and line.endswith(f" {peer.video_cid}") for line in video)
        assert any(line.startswith("a=msid:") and line.endswith(f" {peer.audio_cid}") for line in audio)
        assert {line.split()[4] for line in offer.split("\r\n") if line.startswith("a=candidate:")} == {"127.0.0.1"}
        assert "a=group:BUNDLE 0 1" in offer
        candidates = peer.local_candidates()
        assert candidates and all(c.startswith("candidate:") and " 127.0.0.1 " in c for c, _, _ in candidates)
        assert {(mid, index) for _, mid, index in candidates} == {("0", 0)}
    finally:
        await peer.close()


def test_opus_parameters_mono_without_dtx_replace_existing_ones() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 x=1\r\n"
    out = set_opus_parameters(sdp, "0", stereo=False, dtx=False)
    assert out.count("a=fmtp:96") == 1
    assert "a=fmtp:96 minptime=10;useinbandfec=1\r\n" in out
    assert set_opus_parameters(sdp, "1", stereo=True, dtx=True) == sdp  # another mid: untouched


async def test_remote_candidates_wait_for_the_answer_and_garbage_is_ignored() -> None:
    peer = PublisherPeer(host_addresses=LOOPBACK_ADDRESSES, audio=(1, False))
    try:
        await peer.add_remote_candidate("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "0", 0)
        await peer.add_remote_candidate("candidate:broken", "0", 0)
        await peer.add_remote_candidate("", "0", 0)  # end of candidates: not passed on
        assert len(peer._pending_candidates) == 1
    finally:
        await peer.close()
