"""Front doors: RTMP, WHIP, SRT and URL pull, each producing a media source of encoded packets."""
