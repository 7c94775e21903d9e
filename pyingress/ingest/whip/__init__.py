"""WHIP ingest (RFC 9725) as livekit/ingress serves it: endpoints, offer/answer, RTP receive into a MediaSource."""
