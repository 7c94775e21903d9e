"""Room publishing: the LiveKit signal client and the WebRTC simulcast sender."""
