"""Continue tokens of paginated lists: a list longer than its `limit` is kept whole, as read
at its resourceVersion, and served page by page from it; a token older than the TTL (or one
`expire`d, as a compacted etcd does) is a 410 Expired, and the client starts a new list."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

from simcluster.apiserver.store import StoreError

EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)


class Continues:
    def __init__(self, *, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._lists: dict[str, tuple[Sequence[bytes], int, float]] = {}
        self._lock = threading.Lock()

    def start(self, items: Sequence[bytes], rv: int, limit: int) -> tuple[Sequence[bytes], str]:
        """The first page of `items` (read at `rv`) and the token of the next ("": none)."""
        if not limit or len(items) <= limit:
            return items, ""
        token = uuid.uuid4().hex
        with self._lock:
            self._lists[token] = (items, rv, time.monotonic())
        return items[:limit], f"{token}:{limit}"

    def resume(self, token: str, limit: int) -> tuple[Sequence[bytes], int, str]:
        """The page `token` names, its list's resourceVersion and the next page's token."""
        key, _, offset_text = token.partition(":")
        with self._lock:
            entry = self._lists.get(key)
        if entry is None or time.monotonic() - entry[2] > self.ttl:
            raise StoreError(410, "Expired", EXPIRED)
        items, rv, _ = entry
        offset = int(offset_text or 0)
        end = offset + limit if limit else len(items)
        more = f"{key}:{end}" if end < len(items) else ""
        return items[offset:end], rv, more

    def expire(self) -> None:
        """Every token given so far expires."""
        with self._lock:
            self._lists.clear()
