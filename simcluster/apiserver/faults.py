"""Fault injection: matching requests get an error status (with Retry-After), a connection
reset, a delay, or (watches) a stream cut after some events. Seeded, counted, logged.

A rule picks requests by method, path, watch and client: the API server serves the simulated
nodes too (their HTTP kubelets, User-Agent `kubelet/...`), and a fault meant for the awaiter
must not break a kubelet's status write or pod watch (it would change what the awaiter sees,
not test how it copes). So a rule leaves kubelet requests alone unless its `agent` pattern
asks for them."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

KUBELET_AGENT = re.compile(r"^kubelet/")  # the simulated nodes' User-Agent, as a kubelet's


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
    # None: every client but the kubelets; a pattern: clients whose User-Agent it matches
    # (`"^kubelet/"`: only the simulated nodes' requests)
    agent: str | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _agent: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self._agent = None if self.agent is None else re.compile(self.agent)

    def matches(self, method: str, path: str, watch: bool, agent: str = "") -> bool:
        clients = (
            KUBELET_AGENT.search(agent) is None
            if self._agent is None
            else self._agent.search(agent) is not None
        )
        return (
            clients
            and (self.method == "*" or self.method == method)
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

    def pick(self, method: str, path: str, watch: bool, agent: str = "") -> Fault | None:
        """The first rule for this request (counting it), if any; `agent`: its User-Agent."""
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                if not rule.matches(method, path, watch, agent):
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
