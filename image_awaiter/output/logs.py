"""Logging: structlog with a console renderer on a terminal, JSON lines elsewhere.

Events have stable dotted names (`node.done`, `daemonset.created`, `watch.expired`). A final
processor redacts anything that looks like a credential, at every verbosity.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from image_awaiter.spec.settings import LogFormat

_SECRET_KEYS = re.compile(r"token|authorization|password|secret|client[-_]?key|bearer", re.I)
_SECRET_VALUES = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_REDACTED = "[redacted]"


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = _REDACTED
        elif isinstance(value, str) and "earer" in value:
            event[key] = _SECRET_VALUES.sub(r"\1" + _REDACTED, value)
    return event


@dataclass(frozen=True, slots=True)
class Logging:
    """How the run logs: what `configure` reads of the settings."""

    log_format: LogFormat
    verbosity: int


def configure(*, log_format: LogFormat, verbosity: int, stream: TextIO | None = None) -> None:
    """verbosity: -1 quiet (warnings and errors), 0 normal, 1+ debug."""
    out = stream or sys.stderr
    use_console = log_format == "console" or (log_format == "auto" and out.isatty())
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty(), exception_formatter=_one_line)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries underneath must never print request headers, whatever the verbosity.
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _one_line(sio: TextIO, exc_info: Any) -> None:
    sio.write(f"\n{exc_info[0].__name__}: {exc_info[1]}")
