"""The one exception the RTMP protocol core raises for anything a peer did wrong."""


class RtmpProtocolError(Exception):
    """The peer broke the protocol or a limit; the connection cannot continue.

    ``str(error)`` is written for the person running the encoder: it says what arrived and what was expected.
    """


class UnsupportedCodecError(RtmpProtocolError):
    """Well-formed media in a codec we cannot ingest (maps to LiveKit's ``unsupported format for the source media``)."""
