"""How counts are worded in what the run says: `1 pull group`, `3 pull groups`, `the 1 image`,
`all 3 images` (never `1 pull groups` nor `all 1 images`)."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """`1 pull group`, `3 pull groups`: the noun in the plural only when it is."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def every(count: int, noun: str) -> str:
    """`the 1 image`, `all 3 images`."""
    return f"the 1 {noun}" if count == 1 else f"all {count} {noun}s"
