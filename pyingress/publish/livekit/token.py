"""The access token an ingress session joins its room with (protocol.md §2.3, after protocol ``ingress/token.go``).

livekit-server never hands an OSS worker a token, so the worker mints one from its own api_key/api_secret: the
participant is the ingress (kind INGRESS, identity/name/metadata as configured on it), may publish and update its
own attributes (for ``ingress.resourceID``), does not subscribe — which also makes the publisher PeerConnection the
primary one, so the server sends no subscriber offer (§5.3).
"""

import datetime

from livekit.api import AccessToken, VideoGrants
from livekit.protocol.ingress import IngressInfo

INGRESS_ID_ATTRIBUTE = "ingress.ingressID"
RESOURCE_ID_ATTRIBUTE = "ingress.resourceID"
JOIN_TOKEN_TTL = datetime.timedelta(hours=24)


def ingress_join_token(
    api_key: str,
    api_secret: str,
    *,
    room_name: str,
    identity: str,
    name: str = "",
    metadata: str = "",
    ingress_id: str = "",
    ttl: datetime.timedelta = JOIN_TOKEN_TTL,
) -> str:
    """A signed JWT for ``/rtc``: kind "ingress", attribute ``ingress.ingressID``, publish-only grants, 24 h."""
    grants = VideoGrants(
        room_join=True,
        room=room_name,
        can_publish=True,
        can_subscribe=False,
        can_update_own_metadata=True,
    )
    token = (
        AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_metadata(metadata)
        .with_kind("ingress")
        .with_attributes({INGRESS_ID_ATTRIBUTE: ingress_id})
        .with_grants(grants)
        .with_ttl(ttl)
    )
    return token.to_jwt()


def ingress_join_token_for(info: IngressInfo, api_key: str, api_secret: str) -> str:
    """The join token for an ingress as stored (room, participant identity/name/metadata, id)."""
    return ingress_join_token(
        api_key,
        api_secret,
        room_name=info.room_name,
        identity=info.participant_identity,
        name=info.participant_name,
        metadata=info.participant_metadata,
        ingress_id=info.ingress_id,
    )
