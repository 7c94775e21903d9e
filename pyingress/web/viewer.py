"""The preview's access token: a hidden viewer that may subscribe in one room, for a few minutes, and nothing else.

The page gets it from an authenticated, CSRF-checked request and hands it to livekit-client.  It cannot publish
media or data, cannot update its own metadata, names one room, and expires after ``PREVIEW_TTL``; ``hidden``
keeps the preview out of the room's participant list, so watching from the dashboard changes nothing the room's
other participants see.  (livekit-server refreshes a connected participant's token itself, so a preview that
joined in time keeps playing; a leaked token is worthless after the TTL.)
"""

import datetime
import secrets

from livekit.api import AccessToken, VideoGrants

PREVIEW_TTL = datetime.timedelta(minutes=5)
IDENTITY_PREFIX = "pyingress-preview-"


def preview_token(api_key: str, api_secret: str, room: str) -> tuple[str, str]:
    """(token, identity) of a new preview viewer of ``room``."""
    identity = IDENTITY_PREFIX + secrets.token_hex(4)
    grants = VideoGrants(
        room_join=True,
        room=room,
        can_subscribe=True,
        can_publish=False,
        can_publish_data=False,
        can_update_own_metadata=False,
        hidden=True,
    )
    token = (
        AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name("dashboard preview")
        .with_grants(grants)
        .with_ttl(PREVIEW_TTL)
        .to_jwt()
    )
    return token, identity
