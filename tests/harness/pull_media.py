"""Media files for URL pull tests, made by Debian ffmpeg in the test run (cached by name in one directory), and
the URL ingress requests that point at them."""

import subprocess
from pathlib import Path
from subprocess import Popen

from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from tests.harness.processes import start_logged
from tests.harness.publishers import ffmpeg_binary


def _video(size: str, rate: int, duration: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]


def _audio(duration: float, channels: int = 2, rate: int = 48000) -> list[str]:
    layout = "stereo" if channels == 2 else "mono"
    return [
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate={rate}:duration={duration},aformat=channel_layouts={layout}",
    ]


VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"]
VP8 = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0"]

# name → ffmpeg arguments after the inputs (the inputs come from ``kind``)
FILES: dict[str, tuple[str, list[str]]] = {
    # 720p30 H.264 + stereo AAC, moov at the front as web servers usually serve MP4
    "clip720.mp4": ("av", [*H264, "-b:v", "2M", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]),
    "clip.mov": ("av", [*H264, "-b:v", "1M", "-c:a", "aac"]),
    "clip.mkv": (
        "av",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-c:a", "libopus"],
    ),
    "clip.webm": (
        "av",
        ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-c:a", "libvorbis"],
    ),
    "clip.ts": ("av", [*H264, "-b:v", "1M", "-c:a", "aac", "-f", "mpegts"]),
    "audio.ogg": ("a", ["-c:a", "libvorbis"]),
    "audio.mp3": ("a", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "audio.m4a": ("a", ["-c:a", "aac", "-b:a", "128k"]),
    "clip.flv": ("av", [*H264, "-c:a", "aac", "-f", "flv"]),
}


def make_file(directory: Path, name: str, duration: float = 6.0, size: str = "1280x720", rate: int = 30) -> Path:
    """``directory/name`` as FILES describes it, made once per directory."""
    path = directory / name
    if path.exists():
        return path
    kind, codec_args = FILES[name]
    inputs = (_video(size, rate, duration) if "v" in kind else []) + _audio(duration)
    command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *inputs, *codec_args, "-t", str(duration)]
    subprocess.run([*command, str(path)], check=True, capture_output=True, timeout=300)
    return path


def make_hls_vod(directory: Path, source: Path, segment_seconds: float = 1.0) -> Path:
    """A VOD playlist (with an end marker) of ``source`` in ``directory/<stem>-vod/``, its segments copied."""
    out = directory / f"{source.stem}-vod"
    playlist = out / "index.m3u8"
    if playlist.exists():
        return playlist
    out.mkdir(parents=True, exist_ok=True)
    command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-c", "copy"]
    command += ["-f", "hls", "-hls_time", str(segment_seconds), "-hls_list_size", "0", "-hls_playlist_type", "vod"]
    subprocess.run([*command, str(playlist)], check=True, capture_output=True, timeout=300)
    return playlist


def url_request(url: str, room: str, identity: str, **fields: object) -> CreateIngressRequest:
    return CreateIngressRequest(
        input_type=IngressInput.URL_INPUT,
        name=room,
        room_name=room,
        participant_identity=identity,
        participant_name=identity,
        url=url,
        **fields,  # type: ignore[arg-type]
    )


def start_live_hls(directory: Path, log_path: Path, size: str = "640x360", segment_seconds: int = 1) -> Popen[bytes]:
    """Debian ffmpeg writing a live HLS stream (rolling playlist, no end marker while it runs) into ``directory``,
    in real time: a segment every ``segment_seconds``, each starting on a keyframe."""
    directory.mkdir(parents=True, exist_ok=True)
    gop = str(30 * segment_seconds)
    command = [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "warning", "-y", "-re"]
    command += [*_video(size, 30, 3600), *_audio(3600)]
    command += [*H264[:-4], "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-tune", "zerolatency"]
    command += ["-b:v", "800k", "-c:a", "aac", "-f", "hls", "-hls_time", str(segment_seconds)]
    command += ["-hls_list_size", "6", "-hls_flags", "delete_segments+temp_file", str(directory / "index.m3u8")]
    return start_logged(command, log_path)


def playlist_segments(playlist: Path) -> list[str]:
    """The segment names a playlist lists now (empty while it is not written yet)."""
    try:
        text = playlist.read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def make_rotated(directory: Path, source: Path, degrees: int = 90) -> Path:
    """``source`` remuxed into an MP4 whose display matrix says "turn by ``degrees``" (as phones record)."""
    path = directory / f"{source.stem}-rot{degrees}.mp4"
    if not path.exists():
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-c", "copy"]
        command += ["-metadata:s:v:0", f"rotate={degrees}", str(path)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path
