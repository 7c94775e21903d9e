"""The SRT streamid of a publisher: which stream key it pushes to.  Sans-IO: a string in, a request or an error out.

Two forms are accepted (issue 13):

- the SRT access-control syntax (libsrt ``docs/features/access-control.md``): ``#!::`` then comma-separated
  ``key=value`` pairs.  ``r`` (resource name) is the stream key; ``m`` (mode) must be ``publish`` — or absent,
  which the document allows when the listener only takes senders; ``t`` (type) must be ``stream`` if given; ``u``
  (user), ``h`` (host), ``s`` (session) and custom ``<name>_*`` keys are tolerated and ignored, as the document
  lets a listener do.  The nested ``#!:{…}`` form is not supported.
- the bare key, optionally as ``live/<key>`` (the RTMP URL's application and key, which some users paste).

A streamid that arrives URL-encoded (``%23%21%3A%3A…``: FFmpeg ≥ 6 decodes its ``streamid=`` URL option, 5.1 does
not, so users copy either form between them) is decoded first.

Refusals carry the access-control rejection code the listener sends back in the handshake (SRT_REJX_*), so the
encoder's log says what was wrong before any session exists.
"""

from dataclasses import dataclass
from urllib.parse import unquote

from pyingress.ingest.srt.libsrt import MAX_STREAMID, Reject

PREFIX = "#!::"
MODES_REFUSED = frozenset({"request", "bidirectional"})


@dataclass(frozen=True)
class PublishRequest:
    stream_key: str
    user: str = ""


class StreamIdError(ValueError):
    """The streamid cannot be taken: ``reject`` is the rejection reason for the handshake."""

    def __init__(self, reject: Reject, message: str) -> None:
        self.reject = reject
        self.message = message
        super().__init__(message)


def _check_text(text: str, what: str) -> None:
    if not text:
        raise StreamIdError(Reject.X_BAD_REQUEST, f"streamid has no {what}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise StreamIdError(Reject.X_BAD_REQUEST, f"streamid {what} holds spaces or control characters")


def parse_streamid(streamid: str) -> PublishRequest:
    """The stream key a publisher asks for; raises StreamIdError with the SRT rejection reason otherwise."""
    if len(streamid.encode("utf-8", errors="surrogatepass")) > MAX_STREAMID:
        raise StreamIdError(Reject.X_BAD_REQUEST, f"streamid longer than {MAX_STREAMID} bytes")
    if not streamid:
        raise StreamIdError(Reject.X_BAD_REQUEST, "no streamid: set it to the stream key (streamid=#!::r=<key>)")
    if streamid.startswith("%23"):
        try:
            streamid = unquote(streamid, errors="strict")
        except UnicodeDecodeError:
            raise StreamIdError(Reject.X_BAD_REQUEST, "URL-encoded streamid is not UTF-8") from None
    if streamid.startswith("#!:{"):
        raise StreamIdError(Reject.X_UNIMPLEMENTED, "the nested streamid form #!:{…} is not supported; use #!::")
    if streamid.startswith("#!"):
        if not streamid.startswith(PREFIX):
            raise StreamIdError(Reject.X_BAD_REQUEST, "streamid starts with #! but not #!:: (key=value pairs)")
        return _parse_pairs(streamid[len(PREFIX) :])
    key = streamid.removeprefix("live/")
    _check_text(key, "stream key")
    if "/" in key:
        raise StreamIdError(Reject.X_NOTFOUND, "streamid is a path; give the stream key (or live/<stream key>)")
    return PublishRequest(key)


def _parse_pairs(content: str) -> PublishRequest:
    pairs: dict[str, str] = {}
    for item in content.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StreamIdError(Reject.X_BAD_REQUEST, f"streamid item {item[:40]!r} is not key=value")
        if key in pairs:
            raise StreamIdError(Reject.X_BAD_REQUEST, f"streamid gives {key!r} twice")
        pairs[key] = value
    mode = pairs.get("m", "publish")
    if mode in MODES_REFUSED:
        raise StreamIdError(Reject.X_BAD_MODE, f"m={mode}: this listener only takes publishers (m=publish)")
    if mode != "publish":
        raise StreamIdError(Reject.X_BAD_MODE, f"m={mode[:40]!r} is not a mode (m=publish)")
    kind = pairs.get("t", "stream")
    if kind != "stream":
        raise StreamIdError(Reject.X_NOTSUP_MEDIA, f"t={kind[:40]!r}: only live streams (t=stream) are taken")
    for key in pairs:
        # Single letters are reserved for the standard; the ones we do not know would change the meaning.
        if len(key) == 1 and key not in "rmtuhs":
            raise StreamIdError(Reject.X_KEY_NOTSUP, f"streamid key {key!r} is not supported")
    if "r" not in pairs:
        raise StreamIdError(Reject.X_BAD_REQUEST, "streamid has no r=<stream key>")
    _check_text(pairs["r"], "stream key (r=)")
    return PublishRequest(pairs["r"], user=pairs.get("u", ""))
