"""Room publishing: the LiveKit signal client, pacing and the room publisher (WebRTC itself is ``pyingress.webrtc``)."""
