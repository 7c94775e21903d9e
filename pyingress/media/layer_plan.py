"""Which simulcast layers a session publishes, fitted to the source picture.

LiveKit's rule (ingress.md §2.4, ``applyResolutionToLayer``/``filterAndSortLayersByQuality``): each configured
layer is a *bounding box*; the source is scaled into it keeping its aspect (integer division), never upscaled,
and rounded up to even; layers go LOW→HIGH and stop at the first one that already covers the source, so no two
layers are the same picture.  That is ``LayerFit.LIVEKIT``, kept exact for users who compare with LiveKit.

Our default, ``LayerFit.ORIENTATION_AWARE``, differs in two ways users notice:

- a portrait source is fitted into the box turned upright, so a 1080×1920 phone stream gets a 720×1280 top layer
  instead of LiveKit's 406×720 (the layer keeps the pixel budget it was configured with);
- bitrates follow the picture actually encoded: each layer's bitrate is scaled by (fitted area / box area)^0.75,
  the same law presets.py uses between layers, so a 4:3 or small source is not sent at a 16:9 budget.

The source size given here is the *display* size: the decoder turns a display-matrix rotation of 90/270° into a
swapped width and height before planning (see ``display_size``).
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from livekit.protocol.models import VideoQuality

from pyingress.media.presets import LayerSpec, bitrate_for

_QUALITY_ORDER = (VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH)


class LayerFit(enum.Enum):
    LIVEKIT = "livekit"
    ORIENTATION_AWARE = "orientation_aware"


@dataclass(frozen=True)
class PlannedLayer(LayerSpec):
    """One layer as it will be encoded: the exact size fitted to the source (a LayerSpec is a bounding box)."""


@dataclass(frozen=True)
class LayerPlan:
    source_width: int
    source_height: int
    layers: tuple[PlannedLayer, ...]  # LOW → HIGH

    def layer(self, quality: int) -> PlannedLayer | None:
        for layer in self.layers:
            if layer.quality == quality:
                return layer
        return None

    @property
    def top(self) -> PlannedLayer:
        return self.layers[-1]


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """Coded size → display size for a display-matrix rotation in degrees (any sign, multiples of 90)."""
    if rotation % 180 == 90:
        return height, width
    return width, height


def fit_to_box(source_width: int, source_height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """LiveKit's arithmetic: shrink to the box width, then to the box height, integer division, round up to even."""
    width, height = source_width, source_height
    if width > box_width:
        width = box_width
        height = box_width * source_height // source_width
    if height > box_height:
        height = box_height
        width = box_height * source_width // source_height
    return (width + 1) & ~1, (height + 1) & ~1


def _orient_box(box_width: int, box_height: int, source_width: int, source_height: int) -> tuple[int, int]:
    """Turn the box so that its long side lies along the source's long side (square sources keep the box)."""
    source_portrait = source_height > source_width
    box_portrait = box_height > box_width
    if source_width != source_height and box_width != box_height and source_portrait != box_portrait:
        return box_height, box_width
    return box_width, box_height


def plan_layers(
    layers: Sequence[LayerSpec],
    source_width: int,
    source_height: int,
    *,
    fit: LayerFit = LayerFit.ORIENTATION_AWARE,
) -> LayerPlan:
    """Fit configured layers (any order, presets give HIGH first) to a source of the given display size."""
    if source_width <= 0 or source_height <= 0:
        raise ValueError(f"source size must be positive, got {source_width}x{source_height}")
    by_quality = {layer.quality: layer for layer in layers}
    planned: list[PlannedLayer] = []
    for quality in _QUALITY_ORDER:
        spec = by_quality.get(quality)
        if spec is None:
            continue
        box_width, box_height = spec.width, spec.height
        bitrate = spec.bitrate
        if fit is LayerFit.ORIENTATION_AWARE:
            box_width, box_height = _orient_box(box_width, box_height, source_width, source_height)
        width, height = fit_to_box(source_width, source_height, box_width, box_height)
        if fit is LayerFit.ORIENTATION_AWARE and width * height < box_width * box_height:
            bitrate = bitrate_for(bitrate, box_width, box_height, 1, width, height, 1)
        planned.append(PlannedLayer(quality, width, height, bitrate))
        if width >= source_width and height >= source_height:
            break  # the next layer would be the same picture again
    return LayerPlan(source_width, source_height, tuple(planned))
