"""Which containers a URL ingress plays, and what the reference calls the others in its error.

livekit/ingress decides by GStreamer's typefind caps and allows ``audio/x-m4a``, ``application/x-hls``,
``video/quicktime``, ``video/x-matroska``, ``video/webm``, ``video/mpegts``, ``audio/ogg``, ``application/x-id3`` and
``audio/mpeg``; anything else ends with ``unsupported mime type (<type>) for the source media`` (ingress.md §1.6).
We probe with FFmpeg, so its demuxer names map onto those types: the allowed ones to be let through, the others to
the name GStreamer would have printed, so the message reads the same.
"""

from pyingress.control.errors import IngressError

# FFmpeg demuxer name → the mime type GStreamer's typefind reports for such a file.
ALLOWED = {
    "mov,mp4,m4a,3gp,3g2,mj2": "video/quicktime",
    "matroska,webm": "video/x-matroska",
    "mpegts": "video/mpegts",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "aac": "audio/mpeg",  # ADTS: typefind says audio/mpeg (mpegversion 4), which the reference lets through
    "hls": "application/x-hls",
}

OTHERS = {
    "flv": "video/x-flv",
    "wav": "audio/x-wav",
    "avi": "video/x-msvideo",
    "flac": "audio/x-flac",
    "asf": "video/x-ms-asf",
    "mpeg": "video/mpeg",
    "ivf": "video/x-ivf",
    "h264": "video/x-h264",
    "hevc": "video/x-h265",
    "rawvideo": "video/x-raw",
    "gif": "image/gif",
    "png_pipe": "image/png",
    "jpeg_pipe": "image/jpeg",
    "image2": "image/jpeg",
    "webp_pipe": "image/webp",
    "dash": "application/dash+xml",
    "webvtt": "text/vtt",
    "srt": "application/x-subtitle",
    "tty": "text/plain",
    "aiff": "audio/x-aiff",
    "amr": "audio/AMR",
    "ac3": "audio/x-ac3",
    "eac3": "audio/x-eac3",
    "dts": "audio/x-dts",
    "caf": "audio/x-caf",
    "w64": "audio/x-w64",
    "matroska": "video/x-matroska",
}

# Content types a web server sends for pages, not media: refused before FFmpeg guesses at them.
PAGE_TYPES = ("text/html", "application/xhtml+xml")


def unsupported_mime(mime: str) -> IngressError:
    """The reference's ErrUnsupportedDecodeMimeType (NotAcceptable)."""
    return IngressError("not_acceptable", f"unsupported mime type ({mime}) for the source media")


def mime_of(format_name: str) -> str:
    return ALLOWED.get(format_name) or OTHERS.get(format_name) or f"application/x-{format_name.split(',')[0]}"


def check_container(format_name: str) -> None:
    """Raise the reference's refusal unless FFmpeg's demuxer ``format_name`` is one of the allowed containers."""
    if format_name not in ALLOWED:
        raise unsupported_mime(mime_of(format_name))
