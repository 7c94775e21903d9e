"""Opening a URL with PyAV and turning what it holds into the data path's vocabulary (runs in the demux worker).

``open_media`` opens the URL through ``PullOpener`` with PyAV's own open and read timeouts as a second bound (its
interrupt callback fires while FFmpeg waits inside a read), checks the container against the reference's list,
and picks one video and one audio stream: FFmpeg's best of each, never a cover picture (an MP3's attached art is a
"video" stream of one JPEG).  Everything else is discarded, so an HLS master fetches the chosen variant only.

``MediaReader`` yields ``StreamDescription``s first, then ``EncodedPacket``s with the container's own timestamps;
the worker paces them (pacing.py).  A rotated H.264/HEVC video (an MP4's display matrix) gets the rotation
written into its keyframes as a display-orientation SEI (orientation.py), so it is turned upright like a phone's
RTMP.  The end of the media is checked: a file that stops well before the duration its container announced was
cut short (a truncated upload, a lying server) and ends in ERROR, not COMPLETE.

An MPEG-TS's SCTE-35 streams (stream type 0x86, which FFmpeg exposes as data streams of codec ``scte_35``, one
whole section per packet) are read too: each splice_insert comes out as a ``SpliceCue`` in file order among the
packets (scte35.py parses; a section that does not parse is logged and skipped, never the end of the media).
"""

import logging
from collections.abc import Iterator
from typing import cast

import av
import av.container
import av.error
from av.stream import Disposition
from av.video.codeccontext import VideoCodecContext

from pyingress.ingest.pull.formats import check_container
from pyingress.ingest.pull.opener import PullOpener
from pyingress.ingest.pull.orientation import Orienter
from pyingress.ingest.pull.scte35 import Scte35Error, SpliceCue, parse_splice_info
from pyingress.media.container import codec_name, describe, place_in_time
from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription

log = logging.getLogger("pyingress.pull")

# The media must reach this share of its announced duration to count as complete (the last GOP of a file may
# end a little early on some muxers; a cut-off file stops far before).
COMPLETE_SHARE = 0.9
# FFmpeg's HLS demuxer, told what our opener does better: no persistent or parallel HTTP of its own (it would
# talk to our file objects as if they were FFmpeg's http protocol), start at the live edge's last segment (frames
# reach the room one segment behind the producer), and never give up on a live playlist by itself (the opener
# decides when it has stalled).
HLS_OPTIONS = {
    "http_persistent": "0",
    "http_multiple": "0",
    "live_start_index": "-1",
    "m3u8_hold_counters": "100000",
    "max_reload": "100000",
}


class MediaError(Exception):
    """The media cannot be played: the message is the ingress error."""


def _fetch_error(error: av.error.FFmpegError, url: str) -> str:
    return f"cannot read {url}: {error.strerror}"


def open_media(url: str, opener: PullOpener, open_timeout: float, read_timeout: float) -> av.container.InputContainer:
    """Open ``url``; raises MediaError (or the opener's FetchError/PullRefused) with the cause in words."""
    try:
        container = av.open(
            url,
            mode="r",
            io_open=opener,
            options=HLS_OPTIONS if url.lower().split("?")[0].endswith((".m3u8", ".m3u")) else {},
            timeout=(open_timeout, read_timeout),
        )
    except av.error.ExitError:
        raise MediaError(f"cannot open {url}: no media within {open_timeout:g} s") from None
    except av.error.InvalidDataError:
        raise MediaError(f"cannot read {url} as media: no known container or codec in its first bytes") from None
    except av.error.FFmpegError as error:
        raise MediaError(_fetch_error(error, url)) from None
    try:
        check_container(container.format.name)
    except BaseException:
        container.close()
        raise
    return container


class MediaReader:
    """The chosen streams of an open container: their descriptions, then their packets in file order."""

    def __init__(self, container: av.container.InputContainer, url: str) -> None:
        self.container = container
        self.url = url
        self.video = self._pick("video")
        self.audio = self._pick("audio")
        self.cue_streams = [s for s in container.streams.data if s.name == "scte_35"]
        self.cues_skipped = 0  # SCTE-35 sections that did not parse
        if self.video is None and self.audio is None:
            raise MediaError(f"{url} holds no audio or video stream")
        self.start = container.start_time / 1e6 if container.start_time is not None else None
        self.duration = container.duration / 1e6 if container.duration and container.duration > 0 else None
        self.position = 0.0
        self.packets = 0
        self.rotation = 0
        self._orienter: Orienter | None = None
        self._last_dts: dict[int, int] = {}

    def _pick(self, kind: MediaKind) -> av.stream.Stream | None:
        streams = [
            s
            for s in (self.container.streams.video if kind == "video" else self.container.streams.audio)
            if not s.disposition & Disposition.attached_pic
        ]
        if not streams:
            return None
        try:
            best = self.container.streams.best(kind)
        except (ValueError, av.error.FFmpegError):
            best = None
        return best if best in streams else streams[0]

    @property
    def streams(self) -> list[av.stream.Stream]:
        return [s for s in (self.video, self.audio) if s is not None]

    def descriptions(self) -> list[StreamDescription]:
        return [describe(stream) for stream in self.streams]

    def packets_in_order(self) -> Iterator[EncodedPacket | SpliceCue]:
        """Packets of the chosen streams, and the splice_inserts of its SCTE-35 streams, until the media ends;
        raises MediaError (or the opener's errors)."""
        video_index = self.video.index if self.video is not None else -1
        cue_indexes = {stream.index for stream in self.cue_streams}
        demuxer = self.container.demux([*self.streams, *self.cue_streams])
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.ExitError:
                raise MediaError(f"{self.url} stopped: no data within the read timeout") from None
            except av.error.FFmpegError as error:
                raise MediaError(_fetch_error(error, self.url)) from None
            if packet.size == 0:
                continue  # the demuxer's flush packet at the end
            stream = packet.stream
            if stream.index in cue_indexes:
                cue = self._cue(packet)
                if cue is not None:
                    yield cue
                continue
            placed = place_in_time(packet, self._last_dts)
            if placed is None:
                continue
            pts, dts, time_base = placed
            is_video = stream.index == video_index
            data = bytes(packet)
            if is_video and packet.is_keyframe:
                if self._orienter is None:
                    self._orienter = self._orienter_for(packet)
                data = self._orienter.apply(data)
            seconds = float(dts * time_base)
            if self.start is not None:
                self.position = max(self.position, seconds - self.start)
            self.packets += 1
            yield EncodedPacket(
                kind="video" if is_video else "audio",
                codec=codec_name(stream),
                data=data,
                pts=pts,
                dts=dts,
                time_base=time_base,
                keyframe=packet.is_keyframe if is_video else True,  # audio frames stand alone
            )
        self._check_complete()

    def _cue(self, packet: av.Packet) -> SpliceCue | None:
        try:
            info = parse_splice_info(bytes(packet))
        except Scte35Error as error:
            self.cues_skipped += 1
            log.info("%s: SCTE-35 section skipped: %s", self.url, error)
            return None
        if info.insert is None:
            return None  # splice_null, time_signal …: the reference acts on splice_insert only
        arrived = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
        return SpliceCue(info.insert, arrived)

    def _orienter_for(self, keyframe: av.Packet) -> Orienter:
        """The container's rotation, read off the first picture: FFmpeg hands a stream's display matrix to the
        pictures its own decoder makes (PyAV has no reader for the stream's side data)."""
        assert self.video is not None
        codec = codec_name(self.video)
        if codec in ("h264", "hevc"):
            context = cast(VideoCodecContext, self.video.codec_context)
            try:
                frames = context.decode(keyframe) or context.decode(None)
                self.rotation = round(getattr(frames[0], "rotation", 0) or 0) if frames else 0
            except (av.error.FFmpegError, ValueError) as error:
                log.info("cannot read the rotation of %s: %s", self.url, error)
        extradata = self.video.codec_context.extradata
        return Orienter(codec, bytes(extradata) if extradata else None, self.rotation)

    def _check_complete(self) -> None:
        if self.packets == 0:
            raise MediaError(f"{self.url} holds no media packets")
        if self.duration is not None and self.duration > 2.0 and self.position < COMPLETE_SHARE * self.duration - 1:
            raise MediaError(
                f"{self.url} ended at {self.position:.1f} s of its {self.duration:.1f} s: the file is truncated"
            )

    def close(self) -> None:
        self.container.close()
