"""Fault injection: matching requests get an error status (with Retry-After), a connection
reset, a delay, or (watches) a stream cut after some events. Seeded, counted, logged."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    method: str = "*"
    path: str = ".*"
    watch: bool | None = None
    status: int = 503
    retry_after: float | None = None
    reset: bool = False
    delay: float = 0.0
    cut_after_events: int | None = None
    times: int | None = 1
    probability: float = 1.0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str, watch: bool) -> bool:
        return (
            (self.method == "*" or self.method == method)
            and (self.watch is None or self.watch == watch)
            and self._pattern.search(path) is not None
        )


class Faults:
    def __init__(self, *, seed: int = 0) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.injected = 0
        self.log: list[tuple[str, str, str]] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pick(self, method: str, path: str, watch: bool) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                if not rule.matches(method, path, watch):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.injected += 1
                what = (
                    "reset"
                    if rule.reset
                    else f"cut@{rule.cut_after_events}"
                    if rule.cut_after_events is not None
                    else f"delay {rule.delay}"
                    if rule.delay and not rule.status
                    else str(rule.status)
                )
                self.log.append((method, path, what))
                return rule
        return None
