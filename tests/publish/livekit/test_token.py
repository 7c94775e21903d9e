"""The join token carries exactly what protocol.md §2.3 lists, and livekit-server's verifier accepts it."""

import datetime
import time

import jwt
from livekit.api import TokenVerifier
from livekit.protocol.ingress import IngressInfo

from pyingress.publish.livekit.token import ingress_join_token, ingress_join_token_for

KEY, SECRET = "devkey", "secret-that-is-long-enough-for-hmac-sha256"


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False})


def test_token_names_the_ingress_participant_and_its_grants() -> None:
    token = ingress_join_token(
        KEY, SECRET, room_name="studio", identity="cam-1", name="Camera 1", metadata='{"a":1}', ingress_id="IN_abc"
    )
    claims = _claims(token)
    assert claims["iss"] == KEY
    assert claims["sub"] == "cam-1"
    assert claims["name"] == "Camera 1"
    assert claims["metadata"] == '{"a":1}'
    assert claims["kind"] == "ingress"
    assert claims["attributes"] == {"ingress.ingressID": "IN_abc"}
    video = claims["video"]
    assert isinstance(video, dict)
    assert video["roomJoin"] is True
    assert video["room"] == "studio"
    assert video["canPublish"] is True
    assert video["canSubscribe"] is False
    assert video["canUpdateOwnMetadata"] is True
    assert "hidden" not in video  # visible, with kind INGRESS


def test_token_is_valid_for_24_hours() -> None:
    before = int(time.time())
    claims = _claims(ingress_join_token(KEY, SECRET, room_name="r", identity="i", ingress_id="IN_x"))
    assert isinstance(claims["exp"], int) and isinstance(claims["nbf"], int)
    assert claims["exp"] - claims["nbf"] == 24 * 3600
    assert before - 1 <= claims["nbf"] <= int(time.time()) + 1


def test_verifier_accepts_the_token_as_livekit_server_would() -> None:
    token = ingress_join_token(KEY, SECRET, room_name="r", identity="i", name="n", ingress_id="IN_x")
    claims = TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "i"
    assert claims.kind == "ingress"
    assert claims.video is not None and claims.video.room == "r" and claims.video.room_join


def test_token_from_ingress_info() -> None:
    info = IngressInfo(
        ingress_id="IN_info",
        room_name="room-a",
        participant_identity="ident",
        participant_name="Name",
        participant_metadata="meta",
    )
    claims = _claims(ingress_join_token_for(info, KEY, SECRET))
    assert (claims["sub"], claims["name"], claims["metadata"]) == ("ident", "Name", "meta")
    assert claims["attributes"] == {"ingress.ingressID": "IN_info"}
    assert claims["video"]["room"] == "room-a"  # type: ignore[index]


def test_custom_ttl() -> None:
    claims = _claims(
        ingress_join_token(KEY, SECRET, room_name="r", identity="i", ingress_id="x", ttl=datetime.timedelta(minutes=5))
    )
    assert claims["exp"] - claims["nbf"] == 300  # type: ignore[operator]
