"""Access tokens on the Ingress API: what is accepted, and livekit-server's 401 text for what is not."""

import datetime
import time

import jwt
import pytest
from livekit import api

from pyingress.control.auth import AuthFailure, authenticate

KEYS = {"devkey": "secret"}


def _token(admin: bool = True, key: str = "devkey", secret: str = "secret") -> str:
    grants = api.VideoGrants(ingress_admin=admin)
    token = api.AccessToken(key, secret).with_grants(grants).with_ttl(datetime.timedelta(minutes=5))
    return token.to_jwt()


def _failure(authorization: str | None, access_token: str | None = None) -> str:
    with pytest.raises(AuthFailure) as failure:
        authenticate(authorization, access_token, KEYS)
    return failure.value.message


def test_sdk_tokens_are_accepted_from_the_header_or_the_query() -> None:
    grants = authenticate("Bearer " + _token(), None, KEYS)
    assert grants is not None and grants.ingress_admin and grants.api_key == "devkey"
    by_query = authenticate(None, _token(admin=False), KEYS)
    assert by_query is not None and not by_query.ingress_admin
    assert authenticate(None, None, KEYS) is None


def test_refusals_carry_livekit_servers_text() -> None:
    assert _failure("Basic abc") == "invalid authorization header. Must start with Bearer "
    assert _failure("Bearer abc.def") == "invalid authorization token"
    assert _failure("Bearer " + _token(key="other")) == "invalid API key: other"
    wrong = _token(secret="not-the-secret")
    assert (
        _failure("Bearer " + wrong)
        == f"invalid token: {wrong}, error: token signature is invalid: signature is invalid"
    )


def test_time_claims_with_a_minute_of_leeway() -> None:
    now = int(time.time())
    within = jwt.encode({"iss": "devkey", "exp": now - 30, "video": {"ingressAdmin": True}}, "secret")
    assert authenticate("Bearer " + within, None, KEYS) is not None
    expired = jwt.encode({"iss": "devkey", "exp": now - 120}, "secret")
    assert (
        _failure("Bearer " + expired) == f"invalid token: {expired}, error: token has invalid claims: token is expired"
    )
    early = jwt.encode({"iss": "devkey", "exp": now + 600, "nbf": now + 300}, "secret")
    assert _failure("Bearer " + early).endswith("error: token has invalid claims: token is not valid yet")
    # Unlike livekit-server v1.13.5 (which accepted it), a token that never expires is refused.
    forever = jwt.encode({"iss": "devkey", "video": {"ingressAdmin": True}}, "secret")
    assert _failure("Bearer " + forever).endswith(
        "error: token has invalid claims: token is missing required claim: exp claim is required"
    )


def test_only_hs256() -> None:
    now = int(time.time())
    other = jwt.encode({"iss": "devkey", "exp": now + 60}, "secret", algorithm="HS512")
    assert _failure("Bearer " + other).endswith("error: token signature is invalid: signing method HS512 is invalid")
    unsigned = jwt.encode({"iss": "devkey", "exp": now + 60}, None, algorithm="none")
    assert _failure("Bearer " + unsigned).endswith("signing method none is invalid")
