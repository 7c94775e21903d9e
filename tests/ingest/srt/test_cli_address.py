"""The CLI shows an RTMP ingress's SRT push address beside its RTMP one (issue 13: wherever the RTMP one is)."""

from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.control.cli_ingress import format_info, srt_push_url


def _info(**fields: object) -> IngressInfo:
    return IngressInfo(ingress_id="IN_x", stream_key="k3y", **fields)  # type: ignore[arg-type]


def test_an_rtmp_ingress_gets_the_srt_address_on_its_host() -> None:
    info = _info(input_type=IngressInput.RTMP_INPUT, url="rtmp://ingest.example.com:1935/live")
    assert srt_push_url(info, 8890) == "srt://ingest.example.com:8890?streamid=#!::r=k3y,m=publish"
    assert "or over SRT  srt://ingest.example.com:9000?streamid=#!::r=k3y,m=publish" in format_info(info, 9000)
    v6 = _info(input_type=IngressInput.RTMP_INPUT, url="rtmp://[::1]:1935/live")
    assert srt_push_url(v6, 8890) == "srt://[::1]:8890?streamid=#!::r=k3y,m=publish"


def test_no_srt_address_for_other_inputs_or_without_a_port() -> None:
    assert srt_push_url(_info(input_type=IngressInput.WHIP_INPUT, url="http://h:8080/w"), 8890) is None
    assert srt_push_url(_info(input_type=IngressInput.RTMP_INPUT, url="rtmp://h/live"), -1) is None
    assert "SRT" not in format_info(_info(input_type=IngressInput.RTMP_INPUT, url="rtmp://h/live"))
