"""pyingress: brings live streams that are not WebRTC into LiveKit rooms."""

__version__ = "0.1.0"
