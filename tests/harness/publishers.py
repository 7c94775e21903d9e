"""Publishers driven the way users drive them: Debian ffmpeg pushing a test pattern with a tone."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.processes import PeerError, start_logged

FFMPEG = "/usr/bin/ffmpeg"  # Debian's build: it has libsrt and librtmp-free native RTMP(S), unlike PyAV's.


def ffmpeg_binary() -> str:
    if not Path(FFMPEG).exists() and shutil.which("ffmpeg") is None:
        raise PeerError("ffmpeg not installed: run ./run test (its set-up installs Debian ffmpeg)")
    return FFMPEG if Path(FFMPEG).exists() else str(shutil.which("ffmpeg"))


@dataclass
class TestPattern:
    __test__ = False  # a pattern description, not a test class

    width: int = 1280
    height: int = 720
    fps: int = 30
    duration: float = 5.0
    tone_hz: int = 440
    sample_rate: int = 48_000
    channels: int = 2
    video_codec: str = "libx264"  # or "" for audio-only
    audio_codec: str = "aac"  # or "" for video-only
    video_bitrate: str = "2M"
    gop: int = 60
    bframes: int = 0
    realtime: bool = True  # -re: pace like a live encoder
    # Stereo only: a different tone on the right channel (0: the same tone on both), so a viewer can tell
    # whether the two channels survived the trip or were mixed down to mono.
    right_tone_hz: int = 0

    def input_args(self) -> list[str]:
        args: list[str] = []
        if self.video_codec:
            args += (["-re"] if self.realtime else []) + [
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={self.width}x{self.height}:rate={self.fps}:duration={self.duration}",
            ]
        if self.audio_codec:
            layout = "stereo" if self.channels == 2 else "mono"
            source = (
                f"aevalsrc=0.5*sin({self.tone_hz}*2*PI*t)|0.5*sin({self.right_tone_hz}*2*PI*t)"
                f":s={self.sample_rate}:d={self.duration}:c=stereo"
                if self.right_tone_hz and self.channels == 2
                else f"sine=frequency={self.tone_hz}:sample_rate={self.sample_rate}:duration={self.duration},"
                f"aformat=channel_layouts={layout}"
            )
            args += (["-re"] if self.realtime and not self.video_codec else []) + ["-f", "lavfi", "-i", source]
        return args

    def codec_args(self) -> list[str]:
        args: list[str] = []
        if self.video_codec:
            args += ["-c:v", self.video_codec, "-pix_fmt", "yuv420p", "-b:v", self.video_bitrate, "-g", str(self.gop)]
            if self.video_codec == "libx264":
                args += (
                    ["-preset", "veryfast", "-bf", str(self.bframes), "-tune", "zerolatency"]
                    if not self.bframes
                    else ["-preset", "veryfast", "-bf", str(self.bframes)]
                )
        else:
            args += ["-vn"]
        if self.audio_codec:
            args += ["-c:a", self.audio_codec, "-ar", str(self.sample_rate), "-ac", str(self.channels)]
        else:
            args += ["-an"]
        return args


def ffmpeg_command(pattern: TestPattern, output: str, fmt: str = "flv", extra: list[str] | None = None) -> list[str]:
    return [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-y",
        *pattern.input_args(),
        *pattern.codec_args(),
        *(extra or []),
        "-f",
        fmt,
        output,
    ]


def start_ffmpeg(
    pattern: TestPattern, output: str, log_path: Path, fmt: str = "flv", extra: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """Start pushing; the caller waits or kills (a killed encoder is an abrupt disconnect, as in the field)."""
    return start_logged(ffmpeg_command(pattern, output, fmt, extra), log_path)


def make_clip(pattern: TestPattern, path: Path, fmt: str = "mp4") -> Path:
    """Write the pattern to a file (not paced), e.g. as a source for URL pull or PyAV checks."""
    pattern = TestPattern(**{**pattern.__dict__, "realtime": False})
    subprocess.run(ffmpeg_command(pattern, str(path), fmt), check=True, capture_output=True, timeout=300)
    return path
