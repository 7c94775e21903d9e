"""Fuzz the SRT streamid parser (fuzz/srt_streamid.py) with hypothesis: text shaped like streamids, and bytes."""

import importlib.util
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]


def _target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("srt_streamid", REPO / "fuzz" / "srt_streamid.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _target().check

_pieces = st.sampled_from(["#!::", "#!:{", "r=", "m=", "t=", "u=", "publish", "request", ",", "=", "live/", "%23", "/"])
_streamids = st.lists(_pieces | st.text(max_size=12), max_size=12).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_streamids)
def test_streamid_shaped_text(text: str) -> None:
    check(text.encode("utf-8", errors="surrogatepass"))


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=700))
def test_any_bytes(data: bytes) -> None:
    check(data)
