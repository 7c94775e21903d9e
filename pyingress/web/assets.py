"""The dashboard's files: its own page, script and style (package data), and livekit-client's browser bundle.

livekit-client comes from npm at set-up (``scripts/setup`` installs it under the checkout's ``.cache/node``) and is
served from here, so the preview works offline and no page of ours loads code from a CDN.  It is looked for in
``PYINGRESS_LIVEKIT_CLIENT`` (a file), a copy beside the package's static files (``static/vendor/``, for an
installed package), then the checkout's ``.cache/node``.
"""

import os
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE_NAME = "livekit-client.umd.js"
CHECKOUT_BUNDLE = (
    Path(__file__).resolve().parents[2] / ".cache" / "node" / "node_modules" / "livekit-client" / "dist" / BUNDLE_NAME
)
MISSING_BUNDLE = (
    "livekit-client is not installed: run scripts/setup serve (npm install livekit-client into .cache/node), "
    "or point PYINGRESS_LIVEKIT_CLIENT at livekit-client.umd.js"
)

# What the dashboard serves under /dashboard/static/ (nothing else from that folder).
CONTENT_TYPES = {
    "dashboard.js": "text/javascript",
    "preview.js": "text/javascript",
    "charts.js": "text/javascript",
    "golive.js": "text/javascript",
    "dashboard.css": "text/css",
}


def livekit_client_bundle(environ: dict[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    candidates = [Path(env["PYINGRESS_LIVEKIT_CLIENT"])] if env.get("PYINGRESS_LIVEKIT_CLIENT") else []
    candidates += [STATIC / "vendor" / BUNDLE_NAME, CHECKOUT_BUNDLE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def static_file(name: str) -> tuple[Path, str] | None:
    """One of the dashboard's own files and its content type; None for any other name."""
    content_type = CONTENT_TYPES.get(name)
    if content_type is None:
        return None
    return STATIC / name, content_type


def index_html() -> str:
    return (STATIC / "index.html").read_text()
