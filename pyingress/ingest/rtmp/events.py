"""What an RTMP server connection reports to its caller: small frozen events, named for what happened.

Protocol failures are not events: :class:`~pyingress.ingest.rtmp.errors.RtmpProtocolError` is raised from
``receive_data`` (after the farewell to the peer, if any, was queued in ``data_to_send``).
"""

from dataclasses import dataclass, field
from typing import Any

from pyingress.media.packets import EncodedPacket, StreamDescription


@dataclass(frozen=True)
class Connected:
    """The client's ``connect`` was answered with NetConnection.Connect.Success."""

    app: str
    tc_url: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishRequested:
    """The client asked to publish; answer with ``accept_publish()`` or ``reject_publish(reason)``.

    ``stream_key`` is the last path element of the publishing name with any query string removed (ingress.md
    §1.4); ``app`` is the connect app (ignored for admission, as in livekit/ingress); ``raw_name`` is as sent.
    """

    stream_key: str
    app: str
    raw_name: str
    publish_type: str = "live"


@dataclass(frozen=True)
class StreamMetadata:
    """``@setDataFrame onMetaData`` (or a bare ``onMetaData``) from the publisher."""

    metadata: dict[str, Any]


@dataclass(frozen=True)
class MediaDescription:
    description: StreamDescription


@dataclass(frozen=True)
class MediaPacket:
    packet: EncodedPacket


@dataclass(frozen=True)
class PublishEnded:
    """The publisher stopped (FCUnpublish, deleteStream or closeStream); the connection may still be open."""

    reason: str


RtmpEvent = Connected | PublishRequested | StreamMetadata | MediaDescription | MediaPacket | PublishEnded
