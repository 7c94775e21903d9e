"""Fuzz the Ingress API's input handling (fuzz/ingress_api_request.py) with hypothesis, seeded with the corpus."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).with_name("corpus") / "ingress_api_request"


def _target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ingress_api_request", REPO / "fuzz" / "ingress_api_request.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _target().check
SEEDS = [path.read_bytes() for path in sorted(CORPUS.iterdir())]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
_field_names = st.sampled_from(
    [
        "input_type",
        "inputType",
        "name",
        "room_name",
        "participant_identity",
        "url",
        "enable_transcoding",
        "enabled",
        "bypass_transcoding",
        "video",
        "audio",
        "preset",
        "options",
        "layers",
        "quality",
        "width",
        "height",
        "channels",
        "audio_codec",
        "video_codec",
        "frame_rate",
        "source",
        "ingress_id",
    ]
)
_requests = st.dictionaries(_field_names, _json_values, max_size=8).map(lambda d: json.dumps(d).encode())


def test_the_corpus_is_handled() -> None:
    assert len(SEEDS) >= 10
    for seed in SEEDS:
        check(seed)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SEEDS), st.binary(max_size=64), st.integers(0, 400))
def test_mutated_seeds(seed: bytes, noise: bytes, at: int) -> None:
    cut = min(at, len(seed))
    check(seed[:cut] + noise + seed[cut + len(noise) :])


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 3), _requests)
def test_structured_json_requests(kind: int, body: bytes) -> None:
    check(bytes([kind % 2]) + body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(data)
