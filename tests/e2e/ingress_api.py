"""Raw Twirp calls and response normalisation for comparing pyingress with livekit-server on the wire."""

import datetime
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from livekit import api

from pyingress.control.ids import is_base57_id


def admin_token(key: str = "devkey", secret: str = "secret", admin: bool = True) -> str:
    grants = api.VideoGrants(ingress_admin=admin)
    return api.AccessToken(key, secret).with_grants(grants).with_ttl(datetime.timedelta(minutes=10)).to_jwt()


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def twirp(
    base_url: str,
    method: str,
    body: bytes | dict[str, Any],
    *,
    content_type: str | None = "application/json",
    token: str | None = None,
    authorization: str | None = None,
    http_method: str = "POST",
    path: str | None = None,
) -> Reply:
    """One HTTP request to ``/twirp/livekit.Ingress/<method>``; ``token=None`` means an admin token."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        if authorization:
            headers["Authorization"] = authorization
    else:
        headers["Authorization"] = "Bearer " + (token or admin_token())
    url = base_url + (path or f"/twirp/livekit.Ingress/{method}")
    request = urllib.request.Request(url, data=None if http_method == "GET" else data, headers=headers)
    request.method = http_method
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers.get("Content-Type", ""), error.read())


def normalised(value: Any) -> Any:
    """A response with what must differ between servers replaced: ids, stream keys, the host of base URLs."""
    if isinstance(value, list):
        return [normalised(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("ingress_id", "ingressId") and item:
            assert is_base57_id(item, "IN_"), item
            out[key] = "IN_<id>"
        elif key in ("stream_key", "streamKey") and item:
            assert len(item) == 12, item
            out[key] = "<stream key>"
        elif key == "url" and isinstance(item, str) and item.startswith(("rtmp://", "http://127.0.0.1")):
            parts = urllib.parse.urlsplit(item)
            out[key] = urllib.parse.urlunsplit((parts.scheme, "<host>", parts.path, parts.query, parts.fragment))
        else:
            out[key] = normalised(item)
    return out


def list_all(base_url: str) -> Any:
    reply = twirp(base_url, "ListIngress", {})
    assert reply.status == 200, reply
    return reply.json()
