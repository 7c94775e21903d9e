"""Ingress records made straight in a store, for tests of what sessions and admission do with them."""

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.ids import new_ingress_id, new_stream_key
from pyingress.control.store import IngressStore


def stored_ingress(store: IngressStore, input_type: int = IngressInput.RTMP_INPUT, **fields: object) -> IngressInfo:
    """A transcoded ingress of ``input_type`` in ``store``; a URL ingress has a source URL and is not reusable."""
    is_url = input_type == IngressInput.URL_INPUT
    values: dict[str, object] = {
        "ingress_id": new_ingress_id(),
        "stream_key": "" if is_url else new_stream_key(),
        "url": "http://media.example/a.mp4" if is_url else "rtmp://127.0.0.1:1935/live",
        "input_type": input_type,
        "room_name": "room",
        "participant_identity": "p",
        "reusable": not is_url,
        "enable_transcoding": True,
        "state": IngressState(),
    }
    info = IngressInfo(**{**values, **fields})  # type: ignore[arg-type]
    store.create(info)
    return info
