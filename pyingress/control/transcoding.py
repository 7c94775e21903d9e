"""Whether an ingress is transcoded: WHIP defaults to pass-through, RTMP and URL are always transcoded."""

from livekit.protocol.ingress import IngressInfo, IngressInput


def apply_transcoding_default(info: IngressInfo) -> None:
    """What livekit-server stores at create/update: an explicit choice, else WHIP off and everything else on.

    The deprecated ``bypass_transcoding`` is kept the inverse of ``enable_transcoding`` for older readers.
    """
    if info.HasField("enable_transcoding"):
        info.bypass_transcoding = not info.enable_transcoding
    elif info.input_type == IngressInput.WHIP_INPUT:
        info.enable_transcoding = False
        info.bypass_transcoding = True
    else:
        info.enable_transcoding = True


def is_transcoded(info: IngressInfo) -> bool:
    """The worker's reading, which also serves ingresses stored before ``enable_transcoding`` existed."""
    if info.HasField("enable_transcoding"):
        return info.enable_transcoding
    if info.input_type == IngressInput.WHIP_INPUT:
        return not info.bypass_transcoding
    return True
