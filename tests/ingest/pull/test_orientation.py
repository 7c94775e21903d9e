"""A container's rotation reaches the transcoder's decoder as RTMP's does: a display-orientation SEI in the
keyframes, written by the demux side for H.264 and HEVC in either framing."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from pyingress.ingest.pull.demux import MediaReader, open_media
from pyingress.ingest.pull.http import FetchOptions, HttpClient
from pyingress.ingest.pull.opener import PullOpener
from pyingress.ingest.pull.orientation import Orienter, orientation_sei
from pyingress.media.decode import StreamDecoder
from pyingress.media.packets import EncodedPacket
from tests.harness.media_server import MediaServer
from tests.harness.publishers import ffmpeg_binary


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("orientation")
    source = "testsrc2=size=320x180:rate=30:duration=1"
    _ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "veryfast", str(directory / "h264.mp4"))
    _ffmpeg(
        "-f", "lavfi", "-i", source, "-c:v", "libx265", "-x265-params", "log-level=error", str(directory / "hevc.mp4")
    )
    for name in ("h264", "hevc"):
        rotated = directory / f"{name}-rot90.mp4"
        _ffmpeg("-i", str(directory / f"{name}.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
        _ffmpeg("-i", str(rotated), "-c", "copy", str(directory / f"{name}-rot90.mov"))
        _ffmpeg("-i", str(directory / f"{name}.mp4"), "-c", "copy", "-f", "mpegts", str(directory / f"{name}.ts"))
    return directory


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[MediaServer]:
    with MediaServer(root) as running:
        yield running


def _first_rotations(server: MediaServer, name: str) -> list[int]:
    """What the transcoder's decoder reports for the first pictures of ``name`` as the demux side sends it."""
    url = server.file_url(name)
    reader = MediaReader(open_media(url, PullOpener(HttpClient(FetchOptions()), url), 5, 5), url)
    video = reader.descriptions()[0]
    decoder = StreamDecoder(video)
    rotations: list[int] = []
    for packet in reader.packets_in_order():
        assert isinstance(packet, EncodedPacket)
        if packet.kind == "video":
            frames = decoder.decode(packet.data, packet.pts, packet.dts)
            rotations += [round(getattr(frame, "rotation", 0)) for frame in frames]
        if len(rotations) >= 3:
            break
    reader.close()
    return rotations


@pytest.mark.parametrize("name", ["h264-rot90.mp4", "h264-rot90.mov", "hevc-rot90.mp4"])
def test_a_rotated_file_decodes_with_its_rotation(server: MediaServer, name: str) -> None:
    assert _first_rotations(server, name)[0] == 90


def test_an_upright_file_is_left_alone(server: MediaServer) -> None:
    assert _first_rotations(server, "h264.mp4")[0] == 0


@pytest.mark.parametrize(
    ("name", "rotation", "reads"),
    [
        ("h264.mp4", 90, 90),  # length-prefixed (avcC)
        ("h264.mp4", -90, -90),
        ("h264.mp4", 180, -180),
        ("h264.ts", 270, -90),  # Annex-B
        ("hevc.mp4", 90, 90),  # hvcC
        ("hevc.ts", 90, 90),
    ],
)
def test_the_sei_says_the_rotation_ffmpeg_reads_back(root: Path, name: str, rotation: int, reads: int) -> None:
    with av.open(str(root / name)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        extradata = bytes(stream.codec_context.extradata) if stream.codec_context.extradata else None
        orienter = Orienter(codec, extradata, rotation)
        decoder = av.CodecContext.create(codec, "r")
        if extradata:
            decoder.extradata = extradata
        first = next(p for p in container.demux(stream) if p.size)
        packet = av.Packet(orienter.apply(bytes(first)))
        frames = decoder.decode(packet) or decoder.decode(None)  # type: ignore[attr-defined]
    assert round(frames[0].rotation) == reads


def test_no_sei_for_other_codecs_or_no_turn() -> None:
    assert (
        orientation_sei("vp9", 90) is None
        and orientation_sei("h264", 0) is None
        and orientation_sei("h264", 360) is None
    )
    assert Orienter("h264", None, 0).apply(b"\x00\x00\x01\x65abc") == b"\x00\x00\x01\x65abc"
