"""Channel names as psrpc's pkg/info builds them (its unit test's cases, and the separator quirks) and ids."""

import re

from pyingress.control.psrpc import channels


def test_service_method_topic_suffix() -> None:
    assert channels.request_channel("foo", "bar", ["a", "b"]) == "foo|bar|a|b|REQ"
    assert channels.claim_response_channel("foo", "bar", ["a"]) == "foo|bar|a|RCLAIM"
    assert channels.response_channel("foo", "CLI_x") == "foo|CLI_x|RES"
    assert channels.claim_request_channel("foo", "CLI_x") == "foo|CLI_x|CLAIM"


def test_no_topic_adds_no_separator() -> None:
    assert channels.request_channel("IOInfo", "GetIngressInfo") == "IOInfo|GetIngressInfo|REQ"
    assert channels.request_channel("IngressInternal", "ListActiveIngress", [""]) == (
        "IngressInternal|ListActiveIngress|REQ"
    )


def test_an_empty_part_keeps_the_separator_before_it() -> None:
    # psrpc appends the separator before a part and adds none after a part that came out empty.
    assert channels.format_channel("a", "") == "a|"
    assert channels.format_channel("a", "", "b") == "a|b"
    assert channels.format_channel("S", ["x", ""], "REQ") == "S|x||REQ"
    assert channels.format_channel("S", ["", "x"], "REQ") == "S|x|REQ"
    assert channels.format_channel("", "a") == "a"


def test_characters_outside_the_plain_set_are_escaped() -> None:
    assert channels.sanitize("room-1.a b") == "roomu+002d1u+002eau+0020b"
    assert channels.sanitize("é|") == "u+00e9u+007c"
    assert channels.sanitize("\U0001f600") == "U+0001f600"
    assert channels.sanitize("IN_abcXYZ019") == "IN_abcXYZ019"
    assert channels.request_channel("S", "M", ["a|b"]) == "S|M|au+007cb|REQ"
    # psrpc's own case (channels_test.go), with its '.' separator.
    assert channels.format_channel("🚀_É", "🛰_bar", ["软件"], "END", delim=".") == (
        "U+0001f680_u+00c9.U+0001f6f0_bar.u+8f6fu+4ef6.END"
    )


def test_ids_are_a_prefix_and_twelve_alphanumerics() -> None:
    for make, prefix in (
        (channels.new_client_id, "CLI_"),
        (channels.new_server_id, "SRV_"),
        (channels.new_request_id, "REQ_"),
    ):
        value = make()
        assert re.fullmatch(re.escape(prefix) + "[a-zA-Z0-9]{12}", value), value
    assert len({channels.new_request_id() for _ in range(1000)}) == 1000
