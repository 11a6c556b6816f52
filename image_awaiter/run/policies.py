"""The kinds of run, each a policy the one loop follows: how it reads the nodes, whether it
writes to the cluster, and when it stops. `check` judges one list of the nodes; `await
--dry-run` prints that reading as a plan; `await` creates pullers unless every node is done and
watches until done, a pull failure or the deadline. A long-running kind (a gate that never ends
on its own) is one more policy here, whose `next` always says `WATCH`.

The decisions are pure: an evaluation and the time in, a `Step` out. `Run` carries them out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from image_awaiter.core.readiness import Evaluation
from image_awaiter.spec.settings import Settings


class Step(enum.Enum):
    WATCH = "watch"  # go on: wait for a change or the next tick, evaluate again
    PULL = "pull"  # create the pullers, then watch
    SUCCEEDED = "succeeded"
    MISSING = "missing"  # a read-only run found images missing
    PULL_FAILED = "pull-failed"
    TIMED_OUT = "timed-out"
    PLANNED = "planned"  # a dry run: print the plan


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def once(self) -> bool:
        """Judged on one list of the nodes: no caches, no pullers, `first` ends the run."""
        ...

    @property
    def writes(self) -> bool:
        """Creates pullers and records Events on the awaiter's own pod."""
        ...

    @property
    def checks_namespace(self) -> bool:
        """Reads the namespace when something is missing, as a writing run does before it
        creates anything (which checks it itself)."""
        ...

    def first(self, evaluation: Evaluation) -> Step:
        """What to do after the first reading of the nodes, before anything is created."""
        ...

    def next(self, evaluation: Evaluation, *, now: float, deadline: float | None) -> Step:
        """What to do after each later evaluation (`now` and `deadline` are monotonic)."""
        ...


@dataclass(frozen=True, slots=True)
class Check:
    """Read-only: every target node has every image in its own status, or not."""

    name: str = "check"
    once: bool = True
    writes: bool = False
    checks_namespace: bool = False  # creates nothing in one, so needs none

    def first(self, evaluation: Evaluation) -> Step:
        return Step.SUCCEEDED if evaluation.done else Step.MISSING

    def next(self, evaluation: Evaluation, *, now: float, deadline: float | None) -> Step:
        return self.first(evaluation)


@dataclass(frozen=True, slots=True)
class Plan:
    """`await --dry-run`: `check`'s reading, printed as a plan; creates nothing."""

    name: str = "plan"
    once: bool = True
    writes: bool = False
    checks_namespace: bool = True  # when something is missing, as `await` before creating

    def first(self, evaluation: Evaluation) -> Step:
        return Step.PLANNED

    def next(self, evaluation: Evaluation, *, now: float, deadline: float | None) -> Step:
        return Step.PLANNED


@dataclass(frozen=True, slots=True)
class Await:
    """Pull where images are missing and wait: done, a pull failure, or the deadline."""

    name: str = "await"
    once: bool = False
    writes: bool = True
    checks_namespace: bool = False  # the pullers' creation checks it

    def first(self, evaluation: Evaluation) -> Step:
        return Step.SUCCEEDED if evaluation.done else Step.PULL  # done: the fast path

    def next(self, evaluation: Evaluation, *, now: float, deadline: float | None) -> Step:
        if evaluation.failures:
            return Step.PULL_FAILED
        if evaluation.done:
            return Step.SUCCEEDED
        if deadline is not None and now >= deadline:
            return Step.TIMED_OUT
        return Step.WATCH


def policy_for(settings: Settings) -> Policy:
    """The policy of the command the settings name."""
    if settings.command == "check":
        return Check()
    return Plan() if settings.dry_run else Await()
