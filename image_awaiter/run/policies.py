"""The kinds of run, each a policy the one loop follows: how it reads the nodes, whether it
writes to the cluster, and when it stops. `check` judges one list of the nodes; `await
--dry-run` prints that reading as a plan; `await` creates pullers unless every node is done and
watches until done, a pull failure or the deadline; `gate`, the long-running kind, never ends
on its own (`next` always says `WATCH`) and its part (`releasing.Releasing`) acts on every
evaluation: it releases the nodes that have their images.

The decisions are pure: an evaluation and the time in, a `Step` out. `Run` carries them out."""

from __future__ import annotations

import enum
from typing import Protocol

from image_awaiter.core.readiness import Evaluation
from image_awaiter.run.context import RunContext
from image_awaiter.run.releasing import Releasing
from image_awaiter.spec.gatesettings import GateSettings
from image_awaiter.spec.settings import Settings


class Step(enum.Enum):
    WATCH = "watch"  # go on: wait for a change or the next tick, evaluate again
    PULL = "pull"  # create the pullers, then watch
    SUCCEEDED = "succeeded"
    MISSING = "missing"  # a read-only run found images missing
    PULL_FAILED = "pull-failed"
    PODS_REFUSED = "pods-refused"  # the cluster will not create the pullers
    TIMED_OUT = "timed-out"
    PLANNED = "planned"  # a dry run: print the plan


class Part(Protocol):
    """Something a kind of run does with every evaluation (a gate releases nodes)."""

    def observe(self, evaluation: Evaluation, *, now: float) -> None: ...


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

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        """What to do after each later evaluation (`now` and `deadline` are monotonic;
        `refused`: the cluster refuses to create some puller pods for good)."""
        ...

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        """What this kind of run does with every evaluation, besides telling it."""
        ...


class Check:
    """Read-only: every target node has every image in its own status, or not."""

    name = "check"
    once = True
    writes = False
    checks_namespace = False  # creates nothing in one, so needs none

    def first(self, evaluation: Evaluation) -> Step:
        return Step.SUCCEEDED if evaluation.done else Step.MISSING

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        return self.first(evaluation)

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        return ()


class Plan:
    """`await --dry-run`: `check`'s reading, printed as a plan; creates nothing."""

    name = "plan"
    once = True
    writes = False
    checks_namespace = True  # when something is missing, as `await` before creating

    def first(self, evaluation: Evaluation) -> Step:
        return Step.PLANNED

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        return Step.PLANNED

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        return ()


class Await:
    """Pull where images are missing and wait: done, a pull failure, pullers the cluster
    refuses to create, or the deadline."""

    name = "await"
    once = False
    writes = True
    checks_namespace = False  # the pullers' creation checks it

    def first(self, evaluation: Evaluation) -> Step:
        return Step.SUCCEEDED if evaluation.done else Step.PULL  # done: the fast path

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        if evaluation.failures:
            return Step.PULL_FAILED
        if evaluation.done:
            return Step.SUCCEEDED
        if refused:
            return Step.PODS_REFUSED
        if deadline is not None and now >= deadline:
            return Step.TIMED_OUT
        return Step.WATCH

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        return ()


class Gate:
    """`image-awaiter gate`: keep the gate's pullers and watch the nodes carrying the gate
    taint until a signal; its part releases each once every group targeting it has its images
    (and, on the leader only, writes). The pullers are the gate's long-lived ones
    (`gategroups.GateGroupRuns`), written by the leader as it watches them."""

    name = "gate"
    once = False
    writes = True
    checks_namespace = False  # the gate's pullers are written as they are read

    def first(self, evaluation: Evaluation) -> Step:
        return Step.PULL  # always: the pullers serve the nodes that will join

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        return Step.WATCH  # ends only on a signal

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        return (Releasing(context),)


def policy_for(settings: Settings, *, gate: GateSettings | None = None) -> Policy:
    """The policy of the command the settings name; with `gate`, the gate's."""
    if gate is not None:
        return Gate()
    if settings.command == "check":
        return Check()
    return Plan() if settings.dry_run else Await()
