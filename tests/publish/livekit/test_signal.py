"""The sans-IO signal core: server messages become typed events, requests become the right protobuf bytes."""

import base64
import json
import urllib.parse

import pytest
from livekit.protocol import models, rtc

from pyingress.publish.livekit import signal as sig


def _response(**message: object) -> bytes:
    return rtc.SignalResponse(**message).SerializeToString()  # type: ignore[arg-type]


def _request(data: bytes) -> rtc.SignalRequest:
    request = rtc.SignalRequest()
    request.ParseFromString(data)
    return request


def test_join_response_gives_room_participant_ice_and_ping_settings() -> None:
    join = rtc.JoinResponse(
        room=models.Room(sid="RM_1", name="studio"),
        participant=models.ParticipantInfo(sid="PA_1", identity="cam", kind=models.ParticipantInfo.Kind.INGRESS),
        ice_servers=[rtc.ICEServer(urls=["stun:a:3478", "stun:b:3478"]), rtc.ICEServer(urls=["turn:t"], username="u")],
        ping_interval=5,
        ping_timeout=15,
        server_version="1.13.5",
        other_participants=[models.ParticipantInfo(sid="PA_2", identity="viewer")],
    )
    event = sig.decode_response(_response(join=join))
    assert event == sig.Joined(
        room_sid="RM_1",
        room_name="studio",
        participant_sid="PA_1",
        identity="cam",
        participant_kind=models.ParticipantInfo.Kind.INGRESS,
        ice_servers=(sig.IceServer(("stun:a:3478", "stun:b:3478")), sig.IceServer(("turn:t",), "u", "")),
        subscriber_primary=False,
        ping_interval=5.0,
        ping_timeout=15.0,
        server_version="1.13.5",
        others=("PA_2",),
    )


def test_participant_update_says_who_is_here_and_who_left() -> None:
    gone = models.ParticipantInfo.State.DISCONNECTED
    update = rtc.ParticipantUpdate(
        participants=[
            models.ParticipantInfo(sid="PA_2", state=models.ParticipantInfo.State.ACTIVE),
            models.ParticipantInfo(sid="PA_3", state=models.ParticipantInfo.State.JOINED),
            models.ParticipantInfo(sid="PA_4", state=gone),
        ]
    )
    assert sig.decode_response(_response(update=update)) == sig.ParticipantsChanged(("PA_2", "PA_3"), ("PA_4",))


def test_answer_offer_and_trickle() -> None:
    answer = sig.decode_response(_response(answer=rtc.SessionDescription(type="answer", sdp="v=0\r\n", id=7)))
    assert answer == sig.SdpAnswer("v=0\r\n", 7)
    offer = sig.decode_response(_response(offer=rtc.SessionDescription(type="offer", sdp="v=0", id=2)))
    assert offer == sig.SdpOffer("v=0", 2)
    init = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    trickle = rtc.TrickleRequest(candidateInit=json.dumps(init), target=rtc.SignalTarget.PUBLISHER, final=True)
    event = sig.decode_response(_response(trickle=trickle))
    assert event == sig.IceCandidate(init["candidate"], "0", 0, sig.TARGET_PUBLISHER, True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "candidate_init",
    ["not json", "[1, 2]", '{"candidate": 5}', '{"candidate": "c", "sdpMLineIndex": -1}', '{"sdpMid": 3}'],
)
def test_malformed_trickle_is_a_protocol_error(candidate_init: str) -> None:
    with pytest.raises(sig.SignalProtocolError):
        sig.decode_response(_response(trickle=rtc.TrickleRequest(candidateInit=candidate_init)))


def test_track_published_reports_sid_codecs_and_layers() -> None:
    qualities = (models.VideoQuality.HIGH, models.VideoQuality.LOW, models.VideoQuality.MEDIUM)
    layers = [models.VideoLayer(quality=q, width=320 << q, height=180 << q) for q in qualities]
    track = models.TrackInfo(
        sid="TR_v",
        type=models.TrackType.VIDEO,
        simulcast=True,
        codecs=[models.SimulcastCodecInfo(mime_type="video/H264", layers=layers)],
    )
    event = sig.decode_response(_response(track_published=rtc.TrackPublishedResponse(cid="cid-v", track=track)))
    assert event == sig.TrackPublished("cid-v", "TR_v", models.TrackType.VIDEO, "", True, ("video/H264",), (0, 1, 2))


def test_subscribed_quality_update_per_codec_and_legacy_list() -> None:
    q = models.VideoQuality
    update = rtc.SubscribedQualityUpdate(
        track_sid="TR_v",
        subscribed_codecs=[
            rtc.SubscribedCodec(
                codec="video/h264",
                qualities=[
                    rtc.SubscribedQuality(quality=q.LOW, enabled=True),
                    rtc.SubscribedQuality(quality=q.MEDIUM, enabled=False),
                    rtc.SubscribedQuality(quality=q.HIGH, enabled=False),
                ],
            )
        ],
    )
    event = sig.decode_response(_response(subscribed_quality_update=update))
    assert isinstance(event, sig.SubscribedQualities)
    assert event.for_codec("h264") == frozenset({q.LOW})
    assert event.for_codec("VP8") is None

    legacy = rtc.SubscribedQualityUpdate(
        track_sid="TR_v", subscribed_qualities=[rtc.SubscribedQuality(quality=q.HIGH, enabled=True)]
    )
    event = sig.decode_response(_response(subscribed_quality_update=legacy))
    assert isinstance(event, sig.SubscribedQualities)
    assert event.for_codec("vp8") == frozenset({q.HIGH})


def test_leave_pong_refresh_and_refusals() -> None:
    leave = rtc.LeaveRequest(
        reason=models.DisconnectReason.DUPLICATE_IDENTITY, action=rtc.LeaveRequest.Action.DISCONNECT
    )
    event = sig.decode_response(_response(leave=leave))
    assert event == sig.Left(models.DisconnectReason.DUPLICATE_IDENTITY, rtc.LeaveRequest.Action.DISCONNECT, False)
    assert isinstance(event, sig.Left) and event.reason_name == "DUPLICATE_IDENTITY"
    assert sig.decode_response(_response(pong_resp=rtc.Pong(last_ping_timestamp=10, timestamp=20))) == sig.Pong(10, 20)
    assert sig.decode_response(_response(pong=33)) == sig.Pong(33, 0)
    assert sig.decode_response(_response(refresh_token="jwt")) == sig.TokenRefreshed("jwt")
    refused = rtc.RequestResponse(
        request_id=4, reason=rtc.RequestResponse.Reason.NOT_ALLOWED, message="no", add_track=rtc.AddTrackRequest()
    )
    assert sig.decode_response(_response(request_response=refused)) == sig.RequestRefused(
        4, rtc.RequestResponse.Reason.NOT_ALLOWED, "no", "add_track"
    )
    ok = rtc.RequestResponse(request_id=5, reason=rtc.RequestResponse.Reason.OK)
    assert sig.decode_response(_response(request_response=ok)) == sig.OtherMessage("request_response")
    assert sig.decode_response(_response(mute=rtc.MuteTrackRequest(sid="TR_a", muted=True))) == sig.TrackMuted(
        "TR_a", True
    )
    assert sig.decode_response(_response(speakers_changed=rtc.SpeakersChanged())) == sig.OtherMessage(
        "speakers_changed"
    )


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff", b"\x0a\x05abc"])
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(sig.SignalProtocolError):
        sig.decode_response(data)


def test_requests_encode_to_the_expected_oneof() -> None:
    offer = _request(sig.encode_offer("v=0", 3))
    assert offer.WhichOneof("message") == "offer" and offer.offer.type == "offer" and offer.offer.id == 3
    assert _request(sig.encode_answer("v=1")).answer.type == "answer"
    trickle = _request(sig.encode_trickle("candidate:x", "0", 0, final=True)).trickle
    assert json.loads(trickle.candidateInit) == {"candidate": "candidate:x", "sdpMid": "0", "sdpMLineIndex": 0}
    assert trickle.target == rtc.SignalTarget.PUBLISHER and trickle.final
    add = _request(sig.encode_add_track(rtc.AddTrackRequest(cid="c", type=models.TrackType.AUDIO))).add_track
    assert add.cid == "c"
    ping = _request(sig.encode_ping(1234, 8))
    assert ping.WhichOneof("message") == "ping_req" and ping.ping_req.timestamp == 1234 and ping.ping_req.rtt == 8
    attrs = _request(sig.encode_update_attributes({"ingress.resourceID": "RT_1"})).update_metadata
    assert dict(attrs.attributes) == {"ingress.resourceID": "RT_1"}
    leave = _request(sig.encode_leave()).leave
    assert leave.reason == models.DisconnectReason.CLIENT_INITIATED
    assert leave.action == rtc.LeaveRequest.Action.DISCONNECT
    assert _request(sig.encode_mute("TR_a", True)).mute.muted


def test_rtc_url_for_publish_only_participant() -> None:
    url = sig.rtc_url("http://127.0.0.1:7880", "tok")
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("ws", "127.0.0.1:7880", "/rtc")
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query["access_token"] == "tok"
    assert query["auto_subscribe"] == "0"
    assert query["protocol"] == "17"
    assert query["sdk"] == "python"
    assert "reconnect" not in query

    resumed = dict(
        urllib.parse.parse_qsl(
            urllib.parse.urlsplit(sig.rtc_url("wss://lk.example/base/", "t", reconnect_sid="PA_9")).query
        )
    )
    assert resumed["reconnect"] == "1" and resumed["sid"] == "PA_9"
    assert urllib.parse.urlsplit(sig.rtc_url("https://lk.example/base/", "t")).path == "/base/rtc"
    attributes = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(sig.rtc_url("ws://h", "t", attributes={"a": "b"})).query)
    )
    assert json.loads(base64.urlsafe_b64decode(attributes["attributes"])) == {"a": "b"}
    with pytest.raises(ValueError):
        sig.rtc_url("ftp://h", "t")


def test_connection_pings_on_the_servers_interval_and_times_out() -> None:
    state = sig.SignalConnection()
    state.start(100.0)
    join = rtc.JoinResponse(ping_interval=2, ping_timeout=6, participant=models.ParticipantInfo(sid="PA"))
    assert isinstance(state.receive_data(_response(join=join), 100.0), sig.Joined)
    assert state.ping_due(101.0) is None
    ping = state.ping_due(102.0)
    assert ping is not None and _request(ping).ping_req.timestamp == 102_000
    assert state.ping_due(102.5) is None
    assert state.seconds_to_next_ping(103.0) == pytest.approx(1.0)
    state.receive_data(_response(pong_resp=rtc.Pong(last_ping_timestamp=102_000, timestamp=1)), 102.04)
    assert state.rtt_ms == 40
    assert not state.timed_out(108.0)
    assert state.timed_out(108.1)
