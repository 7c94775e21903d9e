"""What one session's media pipeline is asked to do, resolved once by the session and passed down unchanged."""

import json
from dataclasses import dataclass
from typing import Any

from pyingress.media.layer_plan import LayerFit
from pyingress.media.presets import AudioEncoding, LayerSpec, VideoEncoding


class PipelineError(Exception):
    """A fault that ends the session: the message goes into IngressState.error as it is."""


@dataclass(frozen=True)
class PipelineConfig:
    video: VideoEncoding | None  # None: video input is ignored
    audio: AudioEncoding | None
    transcode: bool = True  # False: pass-through (WHIP with transcoding disabled)
    layer_fit: LayerFit = LayerFit.ORIENTATION_AWARE
    # Work older than this is dropped (video: up to the next queued keyframe) instead of adding latency.  None for
    # sources paced by back-pressure (files) where every packet must be decoded.
    max_queue_delay: float | None = 0.5
    # An IDR at least this often even without a PLI, so a late subscriber never waits long (ffmpeg baseline: -g 60).
    gop_seconds: float = 2.0
    # Consecutive packets a decoder may refuse before the session ends in ERROR (one bad packet is not fatal).
    decoder_error_limit: int = 25
    # One thread per layer (feasibility.md §4: 2.3× real time for a 1080p ladder on 2 cores) or every layer on
    # the decode thread, which costs less CPU (measured 1.01× vs 1.16× the single-threaded ffmpeg CLI for a 1080p
    # H.264 ladder) and as little latency.  None: decided per session by ``layers_in_parallel``.
    parallel_layers: bool | None = None
    session_id: str = ""  # for log lines only

    def to_json(self) -> bytes:
        def video(enc: VideoEncoding | None) -> dict[str, Any] | None:
            if enc is None:
                return None
            layers = [[layer.quality, layer.width, layer.height, layer.bitrate] for layer in enc.layers]
            return {"codec": enc.codec, "frame_rate": enc.frame_rate, "layers": layers}

        def audio(enc: AudioEncoding | None) -> dict[str, Any] | None:
            if enc is None:
                return None
            return {
                "codec": enc.codec,
                "channels": enc.channels,
                "bitrate": enc.bitrate,
                "disable_dtx": enc.disable_dtx,
            }

        return json.dumps(
            {
                "video": video(self.video),
                "audio": audio(self.audio),
                "transcode": self.transcode,
                "layer_fit": self.layer_fit.value,
                "max_queue_delay": self.max_queue_delay,
                "gop_seconds": self.gop_seconds,
                "decoder_error_limit": self.decoder_error_limit,
                "parallel_layers": self.parallel_layers,
                "session_id": self.session_id,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "PipelineConfig":
        raw = json.loads(data)
        video = raw["video"]
        audio = raw["audio"]
        return cls(
            video=VideoEncoding(
                video["codec"], video["frame_rate"], tuple(LayerSpec(*layer) for layer in video["layers"])
            )
            if video is not None
            else None,
            audio=AudioEncoding(audio["codec"], audio["channels"], audio["bitrate"], audio["disable_dtx"])
            if audio is not None
            else None,
            transcode=raw["transcode"],
            layer_fit=LayerFit(raw["layer_fit"]),
            max_queue_delay=raw["max_queue_delay"],
            gop_seconds=raw["gop_seconds"],
            decoder_error_limit=raw["decoder_error_limit"],
            parallel_layers=raw["parallel_layers"],
            session_id=raw["session_id"],
        )
