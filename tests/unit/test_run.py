"""The run layer against a small in-memory client (`fakekube.FakeKube`): the policies carried
out by the one loop, the pullers created and deleted, the plan written to its stream. The
cluster's own doing (a kubelet pulling an image) is the test's `put` of the node."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from image_awaiter.core.gating import (
    DEFAULT_CONDITION,
    DEFAULT_TAINT,
    Enforce,
    GateRules,
    GateTaint,
    histogram_buckets,
)
from image_awaiter.core.outcomes import Outcome, Result
from image_awaiter.core.readiness import Evaluation
from image_awaiter.kube.caches import Caches
from image_awaiter.kube.resources import DAEMONSETS, EVENTS, NODES, PODS
from image_awaiter.output.metrics import Metrics
from image_awaiter.output.streams import Streams
from image_awaiter.run.awaiting import Run
from image_awaiter.run.context import RunContext
from image_awaiter.run.gatecontext import GateContext
from image_awaiter.run.policies import Gate, Part, Policy, Step, policy_for
from image_awaiter.spec.gatesettings import GateSettings, LeaseSettings
from image_awaiter.spec.settings import Settings, resolve_job
from tests.unit.fakekube import FakeKube

IMAGE = "busybox:1.36"
ON_NODES = "docker.io/library/busybox:1.36"


def node(name: str, *images: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [{"names": [image], "sizeBytes": 1000} for image in images],
        },
    }


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def streams() -> Streams:
    return Streams(out=io.StringIO(), err=io.StringIO())


@contextlib.contextmanager
def run_of(
    kube: FakeKube,
    streams: Streams,
    *,
    policy: Policy | None = None,
    gate: GateContext | None = None,
    **options: Any,
) -> Iterator[Run]:
    """A run of `options` (Settings fields) against `kube`, closed afterwards; its policy the
    command's unless given; with `gate`, a gate's context."""
    settings = Settings(**{"images": (IMAGE,), "interval": 0.05, **options})
    started = time.monotonic()
    context = RunContext(
        settings=settings,
        job=resolve_job(settings),
        kube=kube,  # type: ignore[arg-type]
        namespace="default",
        own_namespace=None,
        run_id="r1",
        owner=None,
        caches=Caches(kube=kube, hold=contextlib.nullcontext),  # type: ignore[arg-type]
        started=started,
        deadline=started + settings.timeout if settings.timeout else None,
        gate=gate,
    )
    run = Run(context, policy=policy or policy_for(settings), view=None, streams=streams)
    try:
        yield run
    finally:
        run.close()


def in_background(run: Run) -> tuple[threading.Thread, list[Outcome]]:
    ended: list[Outcome] = []
    thread = threading.Thread(target=lambda: ended.append(run.go()), daemon=True)
    thread.start()
    return thread, ended


def test_check_succeeds_when_every_node_lists_every_image(kube, streams):
    kube.put(NODES, node("n1", ON_NODES))
    kube.put(NODES, node("n2", ON_NODES, "docker.io/library/other:1"))
    with run_of(kube, streams, command="check") as run:
        outcome = run.go()
    assert (outcome.result, outcome.message) == (
        Result.SUCCESS,
        "all 2 target nodes have the 1 image",
    )
    assert [m for m, _ in kube.requests if m not in ("GET", "WATCH")] == []


def test_check_finds_the_node_missing_an_image_and_creates_nothing(kube, streams):
    kube.put(NODES, node("n1", ON_NODES))
    kube.put(NODES, node("n2"))
    with run_of(kube, streams, command="check") as run:
        outcome = run.go()
    assert outcome.result is Result.MISSING
    assert [v.node for v in outcome.evaluation.verdicts if v.missing] == ["n2"]
    assert kube.objects(DAEMONSETS, namespace="default") == []


def test_await_creates_nothing_when_every_node_already_has_the_images(kube, streams):
    kube.put(NODES, node("n1", ON_NODES))
    with run_of(kube, streams, command="await") as run:
        outcome = run.go()
    assert outcome.result is Result.SUCCESS
    assert ("POST", DAEMONSETS.address(namespace="default").path) not in kube.requests


def test_await_pulls_with_a_daemonset_until_the_node_lists_the_image_then_deletes_it(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", timeout=30.0) as run:
        thread, ended = in_background(run)
        kube.wait_for(lambda: bool(kube.objects(DAEMONSETS, namespace="default")))
        (daemonset,) = kube.objects(DAEMONSETS, namespace="default")
        assert daemonset["metadata"]["labels"]["image-awaiter.io/run-id"] == "r1"
        kube.put(NODES, node("n1", ON_NODES))  # the kubelet pulled it
        thread.join(timeout=10)
    assert [o.result for o in ended] == [Result.SUCCESS]
    assert kube.objects(DAEMONSETS, namespace="default") == []


def test_await_ends_with_exit_3_when_the_controller_refuses_its_pullers(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", timeout=30.0) as run:
        thread, ended = in_background(run)
        kube.wait_for(lambda: bool(kube.objects(DAEMONSETS, namespace="default")))
        (daemonset,) = kube.objects(DAEMONSETS, namespace="default")
        name = daemonset["metadata"]["name"]
        kube.put(  # what the real DaemonSet controller records when admission refuses a pod
            EVENTS,
            {
                "metadata": {"name": f"{name}.1", "namespace": "default"},
                "involvedObject": {"kind": "DaemonSet", "name": name},
                "reason": "FailedCreate",
                "message": f'Error creating: pods "{name}-" is forbidden: error looking up '
                'service account default/gone: serviceaccount "gone" not found',
            },
        )
        thread.join(timeout=10)
    assert [(o.exit_code, o.result) for o in ended] == [(3, Result.PODS_REFUSED)]
    assert 'serviceaccount "gone" not found' in ended[0].message
    assert kube.objects(DAEMONSETS, namespace="default") == []


def test_await_times_out_at_its_deadline_when_a_node_never_gets_the_image(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", timeout=0.5) as run:
        outcome = run.go()
    assert (outcome.result, int(outcome.exit_code)) == (Result.TIMEOUT, 1)
    assert [v.node for v in outcome.evaluation.verdicts if v.missing] == ["n1"]


def test_a_dry_run_writes_the_plan_to_its_stream_and_creates_nothing(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", dry_run=True) as run:
        outcome = run.go()
    assert outcome.result is Result.PLANNED
    assert "n1" in streams.out.getvalue()
    assert streams.err.getvalue() == ""
    assert [m for m, _ in kube.requests if m not in ("GET", "WATCH")] == []


def test_a_dry_run_with_output_yaml_writes_the_daemonsets_on_out_and_the_plan_on_err(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", dry_run=True, output="yaml") as run:
        run.go()
    assert streams.out.getvalue().startswith("apiVersion: apps/v1\nkind: DaemonSet\n")
    assert "n1" in streams.err.getvalue()
    assert [m for m, _ in kube.requests if m not in ("GET", "WATCH")] == []


def puller_pod(daemonset: dict[str, Any], *, node: str, waiting: dict[str, str]) -> dict[str, Any]:
    """The DaemonSet controller's pod on `node`, its image pull waiting as the kubelet says."""
    template = daemonset["spec"]["template"]
    return {
        "metadata": {
            "name": f"{daemonset['metadata']['name']}-{node}",
            "namespace": "default",
            "labels": dict(template["metadata"]["labels"]),
        },
        "spec": {**template["spec"], "nodeName": node},
        "status": {
            "initContainerStatuses": [
                {"name": "install-helper", "imageID": "sha256:1", "state": {"terminated": {}}},
                {"name": "pull-0", "state": {"waiting": waiting}},
            ]
        },
    }


def test_await_ends_at_once_on_a_permanent_pull_error_its_puller_pod_shows(kube, streams):
    kube.put(NODES, node("n1"))
    with run_of(kube, streams, command="await", timeout=30.0) as run:
        thread, ended = in_background(run)
        kube.wait_for(lambda: bool(kube.objects(DAEMONSETS, namespace="default")))
        (daemonset,) = kube.objects(DAEMONSETS, namespace="default")
        not_found = (
            'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/'
            'busybox:1.36": failed to resolve reference "docker.io/library/busybox:1.36": '
            "docker.io/library/busybox:1.36: not found"
        )
        waiting = {"reason": "ErrImagePull", "message": not_found}
        kube.put(PODS, puller_pod(daemonset, node="n1", waiting=waiting))
        thread.join(timeout=10)
    (outcome,) = ended
    assert (outcome.result, int(outcome.exit_code)) == (Result.PULL_FAILED, 4)
    (failure,) = outcome.evaluation.failures
    assert (failure.node, failure.image, failure.kind) == ("n1", IMAGE, "not-found")
    assert kube.objects(DAEMONSETS, namespace="default") == []


class Seen:
    """A part that keeps which nodes each evaluation found done."""

    def __init__(self) -> None:
        self.done: list[list[str]] = []
        self._changed = threading.Condition()

    def observe(self, evaluation: Evaluation, *, now: float) -> None:
        with self._changed:
            self.done.append(evaluation.done_nodes)
            self._changed.notify_all()

    def wait_for(self, done: list[str]) -> None:
        """Until an evaluation finds exactly `done` done."""
        with self._changed:
            assert self._changed.wait_for(lambda: done in self.done, timeout=10)


@dataclasses.dataclass
class Watching:
    """A long-running kind of run, as a gate would be: it always pulls, its part sees every
    evaluation, and (for the test) it ends once two nodes were seen done."""

    seen: Seen
    name: str = "watching"
    once: bool = False
    writes: bool = True
    checks_namespace: bool = False

    def first(self, evaluation: Evaluation) -> Step:
        return Step.PULL

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        return Step.SUCCEEDED if len(evaluation.done_nodes) == 2 else Step.WATCH

    def parts(self, context: RunContext) -> tuple[Part, ...]:
        return (self.seen,)


def test_a_new_kind_of_run_is_a_policy_the_one_loop_follows(kube, streams):
    kube.put(NODES, node("n1", ON_NODES))  # done from the start: `await` would create nothing
    seen = Seen()
    with run_of(kube, streams, command="await", timeout=0, policy=Watching(seen)) as run:
        thread, ended = in_background(run)
        kube.wait_for(lambda: bool(kube.objects(DAEMONSETS, namespace="default")))
        seen.wait_for(["n1"])
        kube.put(NODES, node("n2"))  # a node joins without the image
        kube.put(NODES, node("n2", ON_NODES))  # and gets it
        thread.join(timeout=10)
    assert [o.result for o in ended] == [Result.SUCCESS]
    assert seen.done[0] == ["n1"] and seen.done[-1] == ["n1", "n2"]


GATE_TAINT = {"key": "image-awaiter.io/images-pending", "effect": "NoSchedule"}
FOREIGN_TAINT = {"key": "example.com/other", "effect": "PreferNoSchedule"}  # not excluding


def tainted(name: str, *images: str) -> dict[str, Any]:
    """A node that joined with the gate taint and another one beside it."""
    return {**node(name, *images), "spec": {"taints": [FOREIGN_TAINT, GATE_TAINT]}}


def taints_of(kube: FakeKube, name: str) -> list[dict[str, Any]]:
    (found,) = [n for n in kube.objects(NODES) if n["metadata"]["name"] == name]
    return list(found["spec"].get("taints") or [])


@dataclasses.dataclass
class GateUntil(Gate):
    """The gate's policy, unchanged but for an end the test can ask for (a real gate ends only
    on a signal)."""

    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def next(
        self, evaluation: Evaluation, *, now: float, deadline: float | None, refused: bool = False
    ) -> Step:
        if self.stop.is_set():
            return Step.SUCCEEDED
        return super().next(evaluation, now=now, deadline=deadline, refused=refused)


def test_the_gate_is_a_policy_of_the_one_loop_and_releases_a_node_once_its_image_is_there(
    kube, streams
):
    base = Settings(command="await", images=(IMAGE,), include_cordoned=True, timeout=0)
    settings = GateSettings(
        base=base,
        taint=GateTaint.parse(DEFAULT_TAINT),
        condition=DEFAULT_CONDITION,
        enforce=Enforce("taint"),
        rules=GateRules(),
        lease=LeaseSettings(),
        leader_election=False,  # this process writes alone
    )
    gate = GateContext(
        settings=settings,
        metrics=Metrics(buckets=histogram_buckets()),
        elector=None,
        hold=contextlib.nullcontext,
    )
    kube.put(NODES, tainted("ready", ON_NODES))  # joined with its image already there
    kube.put(NODES, tainted("joining"))  # joined without it
    kube.put(NODES, node("untainted"))  # never gated: never written
    policy = GateUntil()
    options = {"command": "await", "include_cordoned": True, "timeout": 0}
    with run_of(kube, streams, policy=policy, gate=gate, **options) as run:
        thread, ended = in_background(run)
        kube.wait_for(lambda: taints_of(kube, "ready") == [FOREIGN_TAINT])
        (daemonset,) = kube.objects(DAEMONSETS, namespace="default")  # the gate's own puller
        assert daemonset["metadata"]["labels"]["image-awaiter.io/role"] == "gate"
        tolerations = daemonset["spec"]["template"]["spec"]["tolerations"]
        assert {"key": GATE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"} in (
            tolerations
        )
        assert taints_of(kube, "joining") == [FOREIGN_TAINT, GATE_TAINT]  # held
        kube.put(NODES, tainted("joining", ON_NODES))  # its image lands
        kube.wait_for(lambda: taints_of(kube, "joining") == [FOREIGN_TAINT])
        policy.stop.set()
        thread.join(timeout=10)
    assert [o.result for o in ended] == [Result.SUCCESS]
    assert gate.metrics.value("nodes_released_total", reason="ImagesPresent") == 2
    assert ("PATCH", "/api/v1/nodes/untainted") not in kube.requests
    reasons = {
        (e["involvedObject"]["name"], e["reason"])
        for e in kube.objects(EVENTS, namespace="default")
    }
    assert {
        ("ready", "ImagesReady"),
        ("joining", "ImagesPending"),
        ("joining", "ImagesReady"),
    } <= reasons
    assert kube.objects(DAEMONSETS, namespace="default") == [daemonset]  # the gate never deletes
