"""The SRT streamid parser: the forms encoders send, and a rejection reason for everything else."""

import pytest

from pyingress.ingest.srt.libsrt import Reject
from pyingress.ingest.srt.streamid import PublishRequest, StreamIdError, parse_streamid


@pytest.mark.parametrize(
    ("streamid", "key"),
    [
        ("#!::r=abc123,m=publish", "abc123"),
        ("#!::m=publish,r=abc123", "abc123"),
        ("#!::r=abc123", "abc123"),  # no mode: a listener that only takes senders may assume publish
        ("#!::r=abc123,m=publish,t=stream,h=ingest.example.com,s=x", "abc123"),
        ("#!::r=abc123,acme_region=eu", "abc123"),  # custom keys are tolerated
        ("abc123", "abc123"),  # the bare key
        ("live/abc123", "abc123"),  # the RTMP URL's application and key
        ("%23%21%3A%3Ar%3Dabc123%2Cm%3Dpublish", "abc123"),  # as newer FFmpeg users write it in a URL
    ],
)
def test_accepted_forms_name_the_stream_key(streamid: str, key: str) -> None:
    assert parse_streamid(streamid).stream_key == key


def test_the_user_is_kept() -> None:
    assert parse_streamid("#!::u=alice,r=k1") == PublishRequest("k1", user="alice")


@pytest.mark.parametrize(
    ("streamid", "reject", "words"),
    [
        ("", Reject.X_BAD_REQUEST, "no streamid"),
        ("#!::m=publish", Reject.X_BAD_REQUEST, "no r=<stream key>"),
        ("#!::r=", Reject.X_BAD_REQUEST, "no stream key"),
        ("#!::r=k,m=request", Reject.X_BAD_MODE, "only takes publishers"),
        ("#!::r=k,m=bidirectional", Reject.X_BAD_MODE, "only takes publishers"),
        ("#!::r=k,m=push", Reject.X_BAD_MODE, "is not a mode"),
        ("#!::r=k,t=file", Reject.X_NOTSUP_MEDIA, "only live streams"),
        ("#!::r=k,z=1", Reject.X_KEY_NOTSUP, "'z' is not supported"),
        ("#!::r=a,r=b", Reject.X_BAD_REQUEST, "gives 'r' twice"),
        ("#!::r", Reject.X_BAD_REQUEST, "is not key=value"),
        ("#!::=k", Reject.X_BAD_REQUEST, "is not key=value"),
        ("#!:{r=k}", Reject.X_UNIMPLEMENTED, "nested"),
        ("#!r=k", Reject.X_BAD_REQUEST, "not #!::"),
        ("a key", Reject.X_BAD_REQUEST, "spaces or control characters"),
        ("#!::r=a\tb", Reject.X_BAD_REQUEST, "spaces or control characters"),
        ("live/", Reject.X_BAD_REQUEST, "no stream key"),
        ("app/room/key", Reject.X_NOTFOUND, "is a path"),
        ("%23%ff", Reject.X_BAD_REQUEST, "not UTF-8"),
        ("k" * 600, Reject.X_BAD_REQUEST, "longer than 512 bytes"),
    ],
)
def test_refusals_carry_a_rejection_reason_and_words(streamid: str, reject: Reject, words: str) -> None:
    with pytest.raises(StreamIdError) as refused:
        parse_streamid(streamid)
    assert refused.value.reject == reject and words in refused.value.message
