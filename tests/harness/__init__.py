"""Real peers for tests: Redis, livekit-server, pyingress itself, ffmpeg publishers and LiveKit SDK subscribers."""
