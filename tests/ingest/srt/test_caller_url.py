"""srt:// URL ingresses: what the URL may say, and the words CreateIngress refuses the rest with."""

import pytest

from pyingress.control.errors import IngressError
from pyingress.ingest.srt.caller import SrtUrl


def test_a_full_url_is_read() -> None:
    url = SrtUrl.parse(
        "srt://media.example.com:9000?mode=caller&streamid=%23%21%3A%3Ar%3Dfeed,m%3Drequest"
        "&passphrase=0123456789abc&pbkeylen=32&latency=200&conntimeo=1500"
    )
    assert (url.host, url.port, url.streamid) == ("media.example.com", 9000, "#!::r=feed,m=request")
    assert (url.passphrase, url.pbkeylen, url.latency_ms, url.connect_timeout_ms) == ("0123456789abc", 32, 200, 1500)
    assert str(url) == "srt://media.example.com:9000"  # logs and errors never show the passphrase


def test_defaults() -> None:
    url = SrtUrl.parse("srt://[::1]:5000")
    assert (url.host, url.port, url.streamid, url.latency_ms, url.connect_timeout_ms) == ("::1", 5000, "", None, 3000)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("srt://host:99999", "invalid SRT URL: Port out of range 0-65535"),
        ("srt://host:abc", "invalid SRT URL: Port could not be cast to integer value as 'abc'"),
        ("srt://host", "invalid SRT URL: no port"),
        ("srt://:9000", "invalid SRT URL: no host"),
        ("srt://host:9000?mode=listener", "invalid SRT URL: mode=listener: pyingress pulls as a caller"),
        ("srt://host:9000?passphrase=short", "invalid SRT URL: passphrase must be 10 to 79 characters"),
        ("srt://host:9000?pbkeylen=8", "invalid SRT URL: pbkeylen=8 is not an AES key length"),
        ("srt://host:9000?latency=fast", "invalid SRT URL: latency='fast' is not a number"),
        ("srt://host:9000?latency=70000", "invalid SRT URL: latency=70000 must be 0 to 60000"),
        ("srt://host:9000?conntimeo=5", "invalid SRT URL: conntimeo=5 must be 100 to 60000"),
        ("srt://host:9000?streamid=" + "x" * 600, "invalid SRT URL: streamid longer than 512 bytes"),
        ("http://host:9000", "invalid SRT URL: the scheme must be srt://"),
    ],
)
def test_urls_that_cannot_work_are_refused_in_words(url: str, words: str) -> None:
    with pytest.raises(IngressError) as refused:
        SrtUrl.parse(url)
    assert refused.value.code == "invalid_argument" and refused.value.message.startswith(words)
