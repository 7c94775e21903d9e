"""Ids in LiveKit's shapes, from a CSPRNG."""

from livekit.protocol.ingress import IngressInput

from pyingress.control.ids import (
    BASE57_ALPHABET,
    is_base57_id,
    new_event_id,
    new_ingress_id,
    new_resource_id,
    new_stream_key,
)


def test_alphabet_is_shortuuid_base57() -> None:
    assert len(BASE57_ALPHABET) == 57 and len(set(BASE57_ALPHABET)) == 57
    assert not set("01IOl") & set(BASE57_ALPHABET)


def test_shapes() -> None:
    assert is_base57_id(new_ingress_id(), "IN_")
    assert is_base57_id(new_stream_key())
    assert len(new_stream_key()) == 12
    assert is_base57_id(new_event_id(), "EV_")
    assert new_resource_id(IngressInput.RTMP_INPUT).startswith("RT_")
    assert new_resource_id(IngressInput.WHIP_INPUT).startswith("WH_")
    assert new_resource_id(IngressInput.URL_INPUT).startswith("UR_")


def test_stream_keys_do_not_repeat() -> None:
    keys = {new_stream_key() for _ in range(10_000)}
    assert len(keys) == 10_000
    # Every character of the alphabet shows up: keys use the whole 57-symbol space (≈ 70 bits per key).
    assert set("".join(keys)) == set(BASE57_ALPHABET)
