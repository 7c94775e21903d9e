"""Video encoded before the room join is ready, kept per layer from its latest keyframe on.

livekit-server announces a track to the room only when its first media arrives, and a viewer subscribes (and asks
for the IDR it starts from) only then.  Sending what was encoded during the join the moment the join is ready,
instead of asking the encoders for a new IDR and waiting for it, brings all of that forward: at 1080p the forced
IDR came 250-300 ms after the join (the next source picture, the encoder's backlog, the pacing).
"""

from pyingress.media.packets import OutputFrame

# Frames of one layer kept: two seconds at 30 fps.  A longer run without a keyframe is not worth a burst; the join
# then asks for a fresh IDR instead.
MAX_HELD_FRAMES = 60


class JoinHold:
    def __init__(self, limit: int = MAX_HELD_FRAMES) -> None:
        self.limit = limit
        self._layers: dict[int, list[OutputFrame]] = {}

    def add(self, frame: OutputFrame) -> None:
        """Keep one encoded video frame (anything else is ignored)."""
        if frame.kind != "video" or frame.quality is None:
            return
        held = self._layers.setdefault(frame.quality, [])
        if frame.keyframe:
            held.clear()
        elif not held or len(held) >= self.limit:
            held.clear()  # nothing decodes without its keyframe
            return
        held.append(frame)

    def take(self, quality: int) -> list[OutputFrame]:
        """Layer ``quality``'s frames, its keyframe first (none: nothing held), and forget them."""
        return self._layers.pop(quality, [])
