"""SDP offers as WHIP publishers send them: a Chrome-like one with rid simulcast, and builders for bad ones."""

from collections.abc import Sequence

TRANSPORT = [
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Zx8q",
    "a=ice-pwd:4mN0x1R9vT0d8aQeY2wZ7kLp",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09"
    ":5E:D6:BC",
    "a=setup:actpass",
]


def audio_section(mid: str = "0", extra: Sequence[str] = ()) -> list[str]:
    return [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8",
        *TRANSPORT,
        f"a=mid:{mid}",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly",
        "a=msid:- a1",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        *extra,
    ]


def video_section(
    mid: str = "1", payloads: str = "96 97 102 103", rids: Sequence[str] = (), extra: Sequence[str] = ()
) -> list[str]:
    lines = [
        f"m=video 9 UDP/TLS/RTP/SAVPF {payloads}",
        *TRANSPORT,
        f"a=mid:{mid}",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=sendonly",
        "a=msid:- v1",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 transport-cc",
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
        "a=rtpmap:98 VP9/90000",
        "a=fmtp:98 profile-id=0",
        "a=rtpmap:45 AV1/90000",
    ]
    if rids:
        lines += [f"a=rid:{rid} send" for rid in rids]
        lines.append("a=simulcast:send " + ";".join(rids))
    return lines + list(extra)


def offer(*sections: Sequence[str], bundle: bool = True) -> str:
    mids = [line.split(":", 1)[1] for section in sections for line in section if line.startswith("a=mid:")]
    session = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if bundle:
        session.append("a=group:BUNDLE " + " ".join(mids))
    session.append("a=msid-semantic: WMS")
    lines = [*session, *(line for section in sections for line in section)]
    return "\r\n".join(lines) + "\r\n"


CANDIDATE = "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0"
BROWSER_OFFER = offer(audio_section(extra=[CANDIDATE]), video_section())
SIMULCAST_OFFER = offer(audio_section(), video_section(rids=("f", "h", "q")))
