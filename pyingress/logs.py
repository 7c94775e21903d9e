"""Logging as the config asks: plain lines or one JSON object per line (``logging.json``), the session's ingress and
resource ids on every line logged inside a session, and the WebRTC stack's chatter kept below ``info``.

A session binds its ids once (``bind_session``, at the start of its task); asyncio copies the context into every
task and ``to_thread`` call made from there, so the room publisher, the signal client and the WHIP/RTMP handlers it
drives log with them too, without passing ids around.

aiortc and aioice log every ICE check and RTP/RTCP packet (at ``info`` and ``debug``), which buries the service's
own lines; they stay at ``warning`` unless ``logging.component_levels`` names them (``{aiortc: debug}``).  Any
other logger can be set there the same way, by its name (``pyingress.session: debug``).
"""

import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import TextIO

from pyingress.config import ConfigError, LoggingConfig

_SESSION: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("pyingress_session", default=None)

# The WebRTC stack's loggers: quiet unless asked for.
QUIET = ("aiortc", "aioice")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind_session(ingress_id: str, resource_id: str) -> None:
    """From here on in this task (and what it starts), log lines carry these ids."""
    _SESSION.set((ingress_id, resource_id))


def level_of(name: str, key: str) -> int:
    level = _LEVELS.get(name.lower())
    if level is None:
        raise ConfigError(f"{key}: {name!r} is not one of {', '.join(_LEVELS)}")
    return level


class SessionIds(logging.Filter):
    """Puts the bound session's ids on the record (``ingress_id``, ``resource_id``; empty outside a session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _SESSION.get()
        if not hasattr(record, "ingress_id"):
            record.ingress_id, record.resource_id = bound if bound is not None else ("", "")
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the session's ids, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("ingress_id", "resource_id"):
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: LoggingConfig, stream: TextIO | None = None) -> None:
    """Set up the root logger for ``pyingress serve``; raises ConfigError for a level that is not one."""
    level = level_of(config.level, "logging.level")
    components: Mapping[str, str] = config.component_levels or {}
    levels = {name: logging.WARNING for name in QUIET}
    for name, value in components.items():
        levels[name] = level_of(str(value), f"logging.component_levels.{name}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(SessionIds())
    handler.setFormatter(JsonLines() if config.json else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, component_level in levels.items():
        logging.getLogger(name).setLevel(component_level)
