"""LiveKit's side of publishing: the join token and the signal protocol (framing, events, websocket client)."""
