"""MPEG-TS from an SRT socket into the data path's vocabulary, through PyAV (reference feasibility.md §8).

``SrtStream`` is the file-like object PyAV reads: live messages as SRT delivers them, each at its time to play
(TSBPD), never more bytes than a ``read`` asks for, the first message checked to be MPEG-TS so that a publisher
sending anything else is told so at once instead of FFmpeg searching megabytes for a sync byte.  A video PES
without a length is held until its last packet and given one (``pes_end``), so the demuxer yields each picture when
it has arrived, not a frame later.
``TsReader`` opens it with FFmpeg's mpegts demuxer, picks one video and one audio stream, and yields
``StreamDescription``s then ``EncodedPacket``s with the TS's 90 kHz timestamps.  It runs on the connection's own
thread; handing items to the event loop is the caller's business.
"""

import ctypes
import logging
from collections.abc import Iterator

import av
import av.container
import av.error

from pyingress.ingest.srt.libsrt import MAX_PAYLOAD_SIZE, Errno, SrtError, SrtSocket
from pyingress.ingest.srt.pes_end import PesEnds
from pyingress.media.container import codec_name, describe, place_in_time
from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription

log = logging.getLogger("pyingress.srt")

TS_PACKET = 188
TS_SYNC = 0x47
# The codecs an SRT encoder sends in MPEG-TS that the pipeline decodes (issue 13: H.264/HEVC + AAC/Opus/MP2).
VIDEO_CODECS = frozenset({"h264", "hevc"})
AUDIO_CODECS = frozenset({"aac", "opus", "mp2", "mp3"})
# FFmpeg probes the first seconds for each stream's parameters; an encoder's keyframe interval is usually ≤ 2 s,
# and H.264's size is known only from its first SPS.
PROBE_OPTIONS = {"analyzeduration": "3000000", "probesize": "4000000"}
# FFmpeg's mpegts demuxer reads on for as long as no packet of a known stream turns up (a TS of null packets, or
# of PIDs no PMT announces, keeps it reading forever): this many bytes without a packet end the stream in words.
MAX_BYTES_WITHOUT_MEDIA = 8_000_000


class TsError(Exception):
    """The stream cannot be ingested; the message is the ingress error the user sees."""


class PeerGone(Exception):
    """The publisher closed or the connection broke: a normal end for a push, not a media error."""


def check_ts(data: bytes) -> None:
    """Raise TsError unless ``data`` (one SRT message) is whole MPEG-TS packets, as encoders send them."""
    if not data:
        return
    if data[0] != TS_SYNC or len(data) % TS_PACKET:
        head = data[:8].hex(" ")
        raise TsError(
            f"not MPEG-TS: SRT messages must be 188-byte TS packets starting with 0x47 (got {len(data)} bytes: {head})"
        )
    for offset in range(0, len(data), TS_PACKET):
        if data[offset] != TS_SYNC:
            raise TsError(f"not MPEG-TS: no sync byte at offset {offset} of a {len(data)}-byte SRT message")


class SrtStream:
    """A connected SRT socket as a file PyAV reads."""

    def __init__(self, sock: SrtSocket) -> None:
        self.sock = sock
        self.buffer = ctypes.create_string_buffer(MAX_PAYLOAD_SIZE + 44)  # room for the largest live message
        self.messages = 0
        self.bytes = 0
        self.media_at = 0  # ``bytes`` when the reader last got a packet out (TsReader sets it)
        self.pes_ends = PesEnds()  # pictures handed over at their last byte, not a frame later
        self._out = b""  # what the last message (or held picture) left after a read of fewer bytes
        # The first failure, kept: FFmpeg may read again after an error (PyAV then prints the first one and keeps
        # the second), so later reads only say "end of file" and the reader raises this one.
        self.failure: PeerGone | TsError | None = None

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes: PyAV copies whatever comes back into its ``size``-byte buffer, unchecked, and a
        picture held to its last packet (``pes_end``) can be tens of kilobytes at once."""
        if not self._out:
            self._out = self._fill()
        if 0 <= size < len(self._out):
            data, self._out = self._out[:size], self._out[size:]
            return data
        data, self._out = self._out, b""
        return data

    def _fill(self) -> bytes:
        if self.failure is not None:
            return b""
        try:
            while True:  # an empty read would be end of file: read on while a picture's packets are all held
                misjudged = self.pes_ends.stats.misjudged
                data = self.pes_ends.feed(self._read())
                if self.pes_ends.stats.misjudged != misjudged:
                    log.warning(
                        "the encoder stuffs TS packets inside a picture: one picture was cut short (artefacts until "
                        "the next keyframe); its pictures now pass as they come"
                    )
                if data:
                    return data
        except PeerGone as failure:
            self.failure = failure
            held = self.pes_ends.flush()
            if held:
                return held  # the last picture; the next read says end of file, and the reader raises the failure
            raise
        except TsError as failure:
            self.failure = failure
            raise

    def _read(self) -> bytes:
        try:
            count = self.sock.recv_into(self.buffer)
        except SrtError as error:
            if error.code == Errno.ETIMEOUT:
                raise PeerGone("no data within the read timeout") from None
            # ECONNLOST / ENOCONN / EINVSOCK: the peer went away or we closed the socket.
            raise PeerGone(error.message) from None
        if count == 0:
            raise PeerGone("the publisher closed the connection")
        data = self.buffer.raw[:count]
        self.messages += 1
        self.bytes += count
        if self.messages <= 8:  # the first messages decide; after that FFmpeg resyncs on its own
            check_ts(data)
        if self.bytes - self.media_at > MAX_BYTES_WITHOUT_MEDIA:
            raise TsError(
                f"the SRT stream's MPEG-TS holds no audio or video: {MAX_BYTES_WITHOUT_MEDIA // 1_000_000} MB "
                "without a media packet"
            )
        return data


class TsReader:
    """The chosen streams of an MPEG-TS from one publisher: descriptions, then packets until it stops."""

    def __init__(self, stream: SrtStream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.container = self._open()
        try:
            self.video = self._pick("video", VIDEO_CODECS)
            self.audio = self._pick("audio", AUDIO_CODECS)
            if self.video is None and self.audio is None:
                raise TsError("the SRT stream's MPEG-TS holds no audio or video stream")
        except BaseException:
            self.container.close()
            raise
        self.packets = 0
        self._last_dts: dict[int, int] = {}

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.stream, mode="r", format="mpegts", options=PROBE_OPTIONS)
        except (PeerGone, TsError):
            raise
        except av.error.EOFError:
            self._raise_failure()
            raise TsError("the SRT stream's MPEG-TS holds no programme (no PAT/PMT) in its first bytes") from None
        except av.error.FFmpegError as error:
            self._raise_failure()
            raise TsError(f"cannot read the SRT stream as MPEG-TS: {error.strerror}") from None
        if self.stream.failure is not None:  # FFmpeg made do with what it had read before the failure
            container.close()
            self._raise_failure()
        return container

    def _raise_failure(self) -> None:
        if self.stream.failure is not None:
            raise self.stream.failure

    def _pick(self, kind: MediaKind, codecs: frozenset[str]) -> av.stream.Stream | None:
        streams = list(self.container.streams.video if kind == "video" else self.container.streams.audio)
        usable = [s for s in streams if codec_name(s) in codecs]
        if streams and not usable:
            names = ", ".join(sorted({codec_name(s) for s in streams}))
            raise TsError(f"unsupported {kind} codec {names} (SRT takes {', '.join(sorted(codecs))})")
        return usable[0] if usable else None

    @property
    def streams(self) -> list[av.stream.Stream]:
        return [s for s in (self.video, self.audio) if s is not None]

    def descriptions(self) -> list[StreamDescription]:
        return [describe(stream) for stream in self.streams]

    def packets_in_order(self) -> Iterator[EncodedPacket]:
        """Packets of the chosen streams until the publisher stops (PeerGone) or the stream breaks (TsError)."""
        video_index = self.video.index if self.video is not None else -1
        demuxer = self.container.demux(self.streams)
        while True:
            try:
                packet = next(demuxer)
            except (StopIteration, av.error.EOFError):
                self._raise_failure()
                return
            except av.error.FFmpegError as error:
                self._raise_failure()
                raise TsError(f"the SRT stream's MPEG-TS broke: {error.strerror}") from None
            if packet.size == 0:
                continue
            stream = packet.stream
            placed = place_in_time(packet, self._last_dts)
            if placed is None:
                continue
            pts, dts, time_base = placed
            is_video = stream.index == video_index
            self.packets += 1
            self.stream.media_at = self.stream.bytes
            yield EncodedPacket(
                kind="video" if is_video else "audio",
                codec=codec_name(stream),
                data=bytes(packet),
                pts=pts,
                dts=dts,
                time_base=time_base,
                keyframe=packet.is_keyframe if is_video else True,
            )

    def close(self) -> None:
        self.container.close()
