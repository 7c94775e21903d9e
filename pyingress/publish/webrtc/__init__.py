"""What aiortc (pinned 1.16.0) lacks for publishing into a room: rid simulcast sending and loopback-only ICE."""
