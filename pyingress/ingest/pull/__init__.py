"""URL pull: files and HLS over HTTP(S), fetched, demuxed and paced in a worker process per URL ingress.

door.py (in the service) starts worker.py (a process) per session; the worker opens the URL with PyAV through
opener.py and http.py, reads it with demux.py and releases packets at the media's pace (pacing.py).
"""
