"""Transcoding defaults: WHIP off, RTMP and URL on; explicit choices win; the deprecated field follows."""

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.control.transcoding import apply_transcoding_default, is_transcoded


@pytest.mark.parametrize(
    ("input_type", "enabled", "bypass"),
    [
        (IngressInput.RTMP_INPUT, True, False),
        (IngressInput.URL_INPUT, True, False),
        (IngressInput.WHIP_INPUT, False, True),
    ],
)
def test_defaults_by_input_type(input_type: int, enabled: bool, bypass: bool) -> None:
    info = IngressInfo(input_type=input_type)
    apply_transcoding_default(info)
    assert info.HasField("enable_transcoding") and info.enable_transcoding is enabled
    assert info.bypass_transcoding is bypass
    assert is_transcoded(info) is enabled


def test_explicit_choice_wins_and_sets_the_deprecated_inverse() -> None:
    info = IngressInfo(input_type=IngressInput.WHIP_INPUT, enable_transcoding=True)
    apply_transcoding_default(info)
    assert info.enable_transcoding is True and info.bypass_transcoding is False


def test_ingress_stored_before_the_field_existed() -> None:
    # Old WHIP ingresses only had bypass_transcoding: the worker transcodes unless bypass was set.
    assert is_transcoded(IngressInfo(input_type=IngressInput.WHIP_INPUT)) is True
    assert is_transcoded(IngressInfo(input_type=IngressInput.WHIP_INPUT, bypass_transcoding=True)) is False
