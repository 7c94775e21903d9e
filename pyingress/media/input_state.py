"""What came in: the input half of IngressState (mime type, size, frame rate; channels, rate; average bitrate).

LiveKit fills ``IngressState.video``/``audio`` from the decoder's caps (ingress.md §7): ``video/H264``,
``audio/aac``, ``audio/opus``.  We name every codec the way LiveKit/WebRTC name them (``video/H265``,
``video/VP8``, ``video/VP9``, ``video/AV1``) instead of leaking GStreamer caps names; MP3 is ``audio/mpeg`` as there.
Width and height are the decoded *display* size (after a display-matrix rotation), which is what the layers use.
"""

from dataclasses import dataclass, replace

from livekit.protocol.ingress import InputAudioState, InputVideoState

from pyingress.media.packets import StreamDescription

VIDEO_MIME_TYPES = {
    "h264": "video/H264",
    "hevc": "video/H265",
    "vp8": "video/VP8",
    "vp9": "video/VP9",
    "av1": "video/AV1",
}
AUDIO_MIME_TYPES = {
    "aac": "audio/aac",
    "opus": "audio/opus",
    "mp3": "audio/mpeg",
    "mp2": "audio/mpeg",
    "pcm_alaw": "audio/PCMA",
    "pcm_mulaw": "audio/PCMU",
    "g722": "audio/G722",
}


def mime_type(kind: str, codec: str) -> str:
    table = VIDEO_MIME_TYPES if kind == "video" else AUDIO_MIME_TYPES
    return table.get(codec, f"{kind}/{codec}")


@dataclass(frozen=True)
class InputVideo:
    mime_type: str
    width: int = 0
    height: int = 0
    framerate: float = 0.0
    average_bitrate: int = 0

    def to_proto(self) -> InputVideoState:
        return InputVideoState(
            mime_type=self.mime_type,
            width=self.width,
            height=self.height,
            framerate=self.framerate,
            average_bitrate=self.average_bitrate,
        )


@dataclass(frozen=True)
class InputAudio:
    mime_type: str
    channels: int = 0
    sample_rate: int = 0
    average_bitrate: int = 0

    def to_proto(self) -> InputAudioState:
        return InputAudioState(
            mime_type=self.mime_type,
            channels=self.channels,
            sample_rate=self.sample_rate,
            average_bitrate=self.average_bitrate,
        )


class _Rate:
    """Bytes and frames over the span of media time seen so far."""

    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0
        self.first: int | None = None
        self.last = 0

    def add(self, size: int, dts_us: int) -> None:
        self.bytes += size
        self.frames += 1
        if self.first is None:
            self.first = dts_us
        self.last = max(self.last, dts_us)

    @property
    def span(self) -> float:
        return 0.0 if self.first is None else (self.last - self.first) / 1e6

    def bitrate(self) -> int:
        return int(self.bytes * 8 / self.span) if self.span >= 0.5 else 0

    def frame_rate(self) -> float:
        # frames - 1 intervals between the first and the last timestamp, after a second to settle
        return round((self.frames - 1) / self.span, 2) if self.span >= 1.0 else 0.0


class InputStateTracker:
    def __init__(self) -> None:
        self.video: InputVideo | None = None
        self.audio: InputAudio | None = None
        self._rates = {"video": _Rate(), "audio": _Rate()}
        self._announced_frame_rate = 0.0

    def on_stream(self, desc: StreamDescription) -> None:
        if desc.kind == "video":
            self._announced_frame_rate = desc.frame_rate
            self.video = InputVideo(mime_type("video", desc.codec), desc.width, desc.height, desc.frame_rate)
        else:
            self.audio = InputAudio(mime_type("audio", desc.codec), desc.channels, desc.sample_rate)

    def on_packet(self, kind: str, size: int, dts_us: int) -> None:
        self._rates[kind].add(size, dts_us)

    def on_video_frame(self, width: int, height: int) -> bool:
        """The decoded display size; True when it changed what we report."""
        if self.video is None or (self.video.width, self.video.height) == (width, height):
            return False
        self.video = replace(self.video, width=width, height=height)
        return True

    def on_audio_frame(self, sample_rate: int, channels: int) -> bool:
        if self.audio is None or (self.audio.sample_rate, self.audio.channels) == (sample_rate, channels):
            return False
        self.audio = replace(self.audio, sample_rate=sample_rate, channels=channels)
        return True

    def snapshot(self) -> tuple[InputVideo | None, InputAudio | None]:
        video, audio = self.video, self.audio
        if video is not None:
            measured = self._rates["video"].frame_rate()
            video = replace(
                video,
                average_bitrate=self._rates["video"].bitrate(),
                framerate=self._announced_frame_rate or measured,
            )
        if audio is not None:
            audio = replace(audio, average_bitrate=self._rates["audio"].bitrate())
        return video, audio
