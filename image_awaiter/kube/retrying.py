"""Kubernetes access, the one retry policy: which failures are transient, how long to wait
(exponential backoff with jitter, or the server's Retry-After, capped), and when to give up:
at the end of the retry budget (the API is down: `Unreachable`) or at the run's deadline,
whichever comes first (the run has timed out: `DeadlineReached`).

The budget is the run's, not each request's: it counts from the first of the API's consecutive
failures (`Streak`), so an unreachable server ends the run 30 s after it was first found
failing, however many requests came one after another (the namespace read, then the node list,
each with its own 30 s, made it 60)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
import tenacity

from image_awaiter.core.errors import ApiError, DeadlineReached, Unreachable

log = structlog.get_logger("image_awaiter.kube.client")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_BUDGET = 30.0  # seconds of the API's consecutive transient failures before giving up
MAX_BACKOFF = 5.0
MAX_RETRY_AFTER = 60.0


class TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Streak:
    """When the API's current run of transient failures began; None once it answered. Shared
    by every request of a run, from any thread (each write is one attribute)."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def answered(self) -> None:
        self.since = None


class SilentStream(TransientError):
    """A watch stream sent nothing for its read timeout."""


@dataclass(frozen=True, slots=True)
class Limits:
    """When one request's retries end, and whether that is the caller's deadline (the run's
    time is up) rather than the per-request budget (the API is down for good)."""

    give_up_at: float
    deadline_first: bool

    @classmethod
    def of(
        cls, *, budget: float, deadlines: tuple[float | None, ...], since: float | None = None
    ) -> Limits:
        """`since`: when the API's current failures began (the budget counts from there)."""
        budget_end = (time.monotonic() if since is None else since) + budget
        ends = [d for d in deadlines if d is not None]
        if ends and min(ends) < budget_end:
            return cls(give_up_at=min(ends), deadline_first=True)
        return cls(give_up_at=budget_end, deadline_first=False)

    def gave_up(self, error: TransientError, *, host: str) -> ApiError:
        kind: type[ApiError] = DeadlineReached if self.deadline_first else Unreachable
        until = " until the deadline" if self.deadline_first else ""
        return kind(
            f"the Kubernetes API at {host} kept failing{until}: {error}",
            hint="check that the API server is reachable and healthy, then rerun",
        )


def timeout_for(wanted: float, deadlines: tuple[float | None, ...]) -> float:
    """`wanted` seconds, cut short by the nearest deadline (but never below half a second)."""
    ends = [d for d in deadlines if d is not None]
    if not ends:
        return wanted
    return max(0.5, min(wanted, min(ends) - time.monotonic()))


def retrying(limits: Limits) -> tenacity.Retrying:
    """Retry transient failures until `limits.give_up_at`: each wait is cut short so that the
    last attempt happens at that moment, never after it."""

    def wait(state: tenacity.RetryCallState) -> float:
        return min(_wait_retry_after(state), max(0.0, limits.give_up_at - time.monotonic()))

    def stop(state: tenacity.RetryCallState) -> bool:
        return time.monotonic() >= limits.give_up_at

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=wait,
        stop=stop,
        before_sleep=_log_retry,
        reraise=True,
    )


_exponential = tenacity.wait_exponential_jitter(multiplier=0.2, max=MAX_BACKOFF, jitter=0.3)


def _wait_retry_after(state: tenacity.RetryCallState) -> float:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    hint = error.retry_after if isinstance(error, TransientError) else None
    if hint is not None:
        return min(max(hint, 0.0), MAX_RETRY_AFTER)
    return float(_exponential(state))


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.info(
        "api.retry",
        attempt=state.attempt_number,
        error=str(error),
        wait=round(state.upcoming_sleep, 2),
    )


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None
