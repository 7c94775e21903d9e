"""WebRTC on aiortc (pinned 1.16.0), shared by sending into a room (publish) and receiving from a WHIP publisher:
SDP edits, rid simulcast, the ICE host choice."""
