"""One incoming video layer of a pass-through session, forwarded as one output layer of the room track.

A simulcast WHIP publisher sends the same picture two or three times at different sizes, each with its own SPS,
its own keyframes and its own timestamps; nothing about one layer may leak into another, so each has a
``LayerForwarder``: its Annex-B framing, its size, its timeline and its keyframe gate.
"""

from dataclasses import dataclass

from livekit.protocol.models import VideoQuality

from pyingress.media.bitstream import AnnexBWriter, h264_nal_type, h264_sps_size, split_annexb, vp8_frame_info
from pyingress.media.packets import LAYER_NAMES, EncodedPacket, StreamDescription
from pyingress.media.timeline import SessionTimeline


def output_quality(layer: int | None) -> int:
    """The room layer an input layer becomes: itself, or HIGH for a single-layer source."""
    return VideoQuality.HIGH if layer is None else layer


@dataclass(frozen=True)
class ReadFrame:
    data: bytes  # Annex-B for H.264 (parameter sets before every IDR), unchanged for VP8
    keyframe: bool  # from the bitstream, not the front door's flag
    resized: bool  # this frame told us a new size


class LayerForwarder:
    """Framing, size and gate of one layer.  The gate opens at a keyframe and closes when the room pauses it."""

    def __init__(self, desc: StreamDescription, timeline: SessionTimeline) -> None:
        self.source_layer = desc.layer  # what the publisher calls it; None for a single-layer source
        self.quality = output_quality(desc.layer)
        self.name = LAYER_NAMES[self.quality]
        # Each layer is timed on its own: interleaved on one track, layers a few ms apart would look like B-frames.
        self.track = timeline.track("video" if desc.layer is None else f"video.{self.name}", 1 / 30)
        self.seen_keyframe = False
        self.active = True
        self._flowing = False  # a keyframe went out since the start or the last resume
        self._annexb: AnnexBWriter | None = None
        self.describe(desc)

    def describe(self, desc: StreamDescription) -> None:
        """The description: codec, size and H.264 parameter sets (see ``restart`` for a new publisher's)."""
        self.desc = desc
        self.size = (desc.width, desc.height)
        self._annexb = AnnexBWriter("h264", desc.codec_config) if desc.codec == "h264" else None
        if self._annexb is not None:
            self._learn_from_sps(self._annexb.parameter_sets)

    def read(self, packet: EncodedPacket) -> ReadFrame:
        """Frame one packet and learn what it says about the layer; raises BitstreamError."""
        before = self.size
        if self._annexb is not None:
            if packet.codec_config:
                self._annexb.update_config(packet.codec_config)
            data, keyframe = self._annexb.write(packet.data)
            if keyframe:
                self._learn_from_sps(split_annexb(data))
        else:
            data = packet.data
            keyframe, width, height = vp8_frame_info(data)
            if keyframe:
                self._learn((width, height))
        self.seen_keyframe = self.seen_keyframe or keyframe
        return ReadFrame(data, keyframe, self.size != before)

    def admit(self, keyframe: bool) -> str | None:
        """None when this frame goes to the room, else the counter that says why not."""
        if not self.active:
            return "frames_paused"
        if not self._flowing:
            if not keyframe:
                return "packets_before_keyframe"  # a subscriber can start nowhere else
            self._flowing = True
        return None

    def restart(self, desc: StreamDescription) -> None:
        """A new publisher took over the layer (reconnect, newest wins): its frames go from its first keyframe,
        whatever the previous one's left the gate at."""
        self.describe(desc)
        self._flowing = False

    def set_active(self, active: bool) -> bool:
        """True when this resumes the layer: it then waits for a keyframe, which the caller must ask for."""
        resumed = active and not self.active
        self.active = active
        if resumed:
            self._flowing = False  # the frames it missed are gone: a subscriber needs an IDR to start again
        return resumed

    def _learn_from_sps(self, units: list[bytes]) -> None:
        for unit in units:
            if h264_nal_type(unit) == 7:
                self._learn(h264_sps_size(unit))

    def _learn(self, size: tuple[int, int]) -> None:
        if size != (0, 0):
            self.size = size


def announced_sizes(layers: list[LayerForwarder]) -> dict[int, tuple[int, int]]:
    """Each layer's size for the room, with a guess for a layer whose size is still unknown.

    A layer without a size (no keyframe yet, no SPS in its description) gets the next better known layer's size
    halved per quality step (HIGH 1280×720 → MEDIUM 640×360 → LOW 320×180, a browser's default
    ``scaleResolutionDownBy`` ladder); with no better one known, the next worse known doubled per step.  The room
    only uses it to pick layers for viewers; the frames carry their real size once they come.
    """
    known = {layer.quality: layer.size for layer in layers if layer.size != (0, 0)}
    sizes: dict[int, tuple[int, int]] = {}
    for layer in layers:
        if layer.quality in known:
            sizes[layer.quality] = known[layer.quality]
            continue
        better = [quality for quality in known if quality > layer.quality]
        worse = [quality for quality in known if quality < layer.quality]
        if better:
            width, height = known[min(better)]
            steps = min(better) - layer.quality
            sizes[layer.quality] = (_even(width >> steps), _even(height >> steps))
        elif worse:
            width, height = known[max(worse)]
            steps = layer.quality - max(worse)
            sizes[layer.quality] = (width << steps, height << steps)
        else:
            sizes[layer.quality] = (0, 0)
    return sizes


def _even(value: int) -> int:
    return max(2, value // 2 * 2)
