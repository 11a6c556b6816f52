"""Durations as operators write them: `90`, `90s`, `500ms`, `5m`, `1h30m`, `1.5h`.

Units are lower case, as Go's `time.ParseDuration` (kubectl, Helm) reads them: `5M` could mean
minutes or months, so it is refused rather than guessed."""

from __future__ import annotations

import re

from image_awaiter.core.errors import UsageError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number is seconds. Raises `UsageError` on anything else."""
    cleaned = text.strip()
    if _PLAIN.fullmatch(cleaned):
        return float(cleaned)
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise UsageError(
            f"invalid duration {text!r}",
            hint="use seconds or lower case units like 90s, 500ms, 5m, 1h30m",
        )
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
