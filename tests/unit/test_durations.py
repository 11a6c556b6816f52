"""Durations as operators type them."""

from __future__ import annotations

import pytest

from image_awaiter.core.durations import parse_duration
from image_awaiter.core.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("500ms", 0.5),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("0", 0),
        ("2m30s", 150),
        (" 10s ", 10),
        ("1d", 86400),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    # Units are lower case, as Go's time.ParseDuration reads them: `5M` (minutes? months?)
    # and `1H` are refused rather than guessed.
    ["5x", "", "-1", "1m-2s", "m", "ten minutes", "1.2.3s", "s5", "5M", "1H", "90S", "500MS"],
)
def test_bad_durations_are_usage_errors_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert "invalid duration" in caught.value.one_line()
    assert "1h30m" in caught.value.one_line()
    assert "lower case" in caught.value.one_line()
