"""LiveKit access tokens on the Ingress API, checked as livekit-server checks them (protocol.md §2.2).

The token comes from ``Authorization: Bearer <jwt>`` or, without that header, the ``access_token`` query parameter.
A token that is present but wrong is refused before Twirp with HTTP 401 and a plain-text reason (the texts of
livekit-server v1.13.5); a missing token is not an error here — the RPC then answers ``unauthenticated``
"permissions denied", as does a valid token without ``video.ingressAdmin``.

Verification: HS256 only, issuer = the API key, 60 s leeway, and — unlike v1.13.5, which accepted tokens without
``exp`` (a never-expiring credential), but like livekit/protocol since — ``exp`` is required.
"""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

# LiveKit's development secret ("secret") is shorter than the 32 bytes PyJWT recommends; LiveKit accepts such keys,
# so PyJWT's warning would only repeat on every token.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

BEARER_PREFIX = "Bearer "
LEEWAY_S = 60


@dataclass(frozen=True)
class AuthFailure(Exception):
    """A token that is present but unusable: HTTP 401 with ``message`` as a plain-text body."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Grants:
    api_key: str
    claims: dict[str, Any]

    @property
    def video(self) -> dict[str, Any]:
        video = self.claims.get("video")
        return video if isinstance(video, dict) else {}

    @property
    def ingress_admin(self) -> bool:
        return self.video.get("ingressAdmin") is True


def _jwt_reason(exc: jwt.PyJWTError) -> str:
    """golang-jwt v5's wording, which livekit-server puts into its 401 body."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has invalid claims: token is expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token has invalid claims: token is not valid yet"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has invalid claims: token is missing required claim: {exc.claim} claim is required"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token has invalid claims: token has invalid issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid: signature is invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token signature is invalid: signing method is invalid"
    return f"token is malformed: {exc}"


def token_from(authorization: str | None, access_token: str | None) -> str:
    """The raw token of a request ('' when there is none); raises AuthFailure for a non-Bearer header."""
    if authorization:
        if not authorization.startswith(BEARER_PREFIX):
            raise AuthFailure("invalid authorization header. Must start with " + BEARER_PREFIX)
        return authorization[len(BEARER_PREFIX) :]
    return access_token or ""


def verify_token(token: str, keys: Mapping[str, str], now: float | None = None) -> Grants:
    """Check a token against the configured keys; raises AuthFailure with livekit-server's 401 text."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthFailure("invalid authorization token") from None
    api_key = unverified.get("iss")
    if not isinstance(api_key, str):
        api_key = ""
    secret = keys.get(api_key, "")
    if not secret:
        raise AuthFailure(f"invalid API key: {api_key}")
    algorithm = header.get("alg")
    try:
        if algorithm != "HS256":
            raise jwt.InvalidAlgorithmError(str(algorithm))
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=api_key,
            leeway=LEEWAY_S,
            # golang-jwt (as livekit uses it) does not check iat; exp is required (see module doc).
            options={"require": ["exp"], "verify_iat": False},
        )
    except jwt.InvalidAlgorithmError:
        reason = f"token signature is invalid: signing method {algorithm} is invalid"
        raise AuthFailure(f"invalid token: {token}, error: {reason}") from None
    except jwt.PyJWTError as exc:
        raise AuthFailure(f"invalid token: {token}, error: {_jwt_reason(exc)}") from None
    return Grants(api_key=api_key, claims=claims)


def authenticate(authorization: str | None, access_token: str | None, keys: Mapping[str, str]) -> Grants | None:
    """The request's grants, None when it carries no token, AuthFailure when it carries a bad one."""
    token = token_from(authorization, access_token)
    if not token:
        return None
    return verify_token(token, keys)
