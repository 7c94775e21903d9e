"""SRT front doors: the listener that encoders push MPEG-TS to (a stream key in the streamid) and the caller that
pulls an ``srt://`` URL ingress, both over libsrt through our ctypes binding (libsrt.py)."""
