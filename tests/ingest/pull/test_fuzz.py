"""The URL pull worker's own parsers (fuzz/url_pull.py) over arbitrary bytes, bounded with hypothesis."""

import importlib.util
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]


def _targets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("url_pull_fuzz", REPO / "fuzz" / "url_pull.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TARGETS = _targets()
PLAYLIST_LINES = st.sampled_from(
    ["#EXTM3U", "#EXT-X-STREAM-INF:BANDWIDTH=1", '#EXT-X-MEDIA:URI="a.m3u8"', '#EXT-X-MEDIA:URI="', "x.m3u8", "", "#"]
)
START_CODES = st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00\x00\x03", b"\x01", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(st.lists(PLAYLIST_LINES | st.text(max_size=30), max_size=20))
def test_playlist_lines_never_raise(lines: list[str]) -> None:
    TARGETS.fuzz_playlist("\n".join(lines).encode())


@settings(max_examples=500, deadline=None)
@given(st.lists(START_CODES | st.binary(max_size=40), max_size=12))
def test_the_sei_writer_never_raises(parts: list[bytes]) -> None:
    TARGETS.fuzz_orientation(b"".join(parts))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_the_sei_writer_takes_any_bytes(data: bytes) -> None:
    TARGETS.fuzz_orientation(data)


CORPUS = sorted((REPO / "tests" / "ingest" / "pull" / "corpus" / "scte35").iterdir())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(CORPUS), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=6))
def test_scte35_sections_with_flipped_bytes_never_raise(seed: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(seed.read_bytes())
    for at, value in flips:
        if at < len(data):
            data[at] = value
    TARGETS.fuzz_scte35(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_scte35_takes_any_bytes(data: bytes) -> None:
    TARGETS.fuzz_scte35(b"\xfc" + data)


def test_the_scte35_corpus_parses() -> None:
    """The seeds are real sections (the standard's sample and the harness's), so the fuzzer starts deep."""
    from pyingress.ingest.pull.scte35 import parse_splice_info

    assert len(CORPUS) >= 8
    for seed in CORPUS:
        parse_splice_info(seed.read_bytes())
