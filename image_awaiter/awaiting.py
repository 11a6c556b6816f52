"""The await loop: gather a snapshot from the caches, evaluate, report, wait; and the one
function (`execute`) that turns every way a run can end into an exit code and a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from image_awaiter.decoding import JsonCodec, NodeCodec
from image_awaiter.errors import (
    ApiError,
    AwaiterError,
    DeadlineReached,
    ExitCode,
    Interrupted,
    NameClash,
    NamespaceNotFound,
    UsageError,
)
from image_awaiter.kube import Connection, Kube, connect
from image_awaiter.pullers import (
    CREATED_AT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RUN_ID_LABEL,
    Owner,
    prepare_for_run,
    run_selector,
)
from image_awaiter.readiness import (
    Evaluation,
    NodeStatus,
    PullerPod,
    evaluate,
    puller_pod_from_json,
)
from image_awaiter.reporting import build_report, not_done_lines, progress_fields
from image_awaiter.settings import Job, Settings, resolve_job
from image_awaiter.targeting import NodeState
from image_awaiter.watching import Informer, WatchTiming

log = structlog.get_logger("image_awaiter")

CLEANUP_BUDGET = 20.0  # seconds the DaemonSet deletion may take, even after the deadline
MIN_EVALUATION_GAP = 0.05  # event-driven evaluations are at most this frequent
HEARTBEAT = 30.0  # an unchanged progress line is repeated this often
MAX_RECREATIONS = 3  # times a DaemonSet deleted by someone else is recreated
CONFIRM_GAP = 1.0  # seconds between reads confirming that our DaemonSet is gone
STALE_AFTER = 24 * 3600.0  # an unowned puller DaemonSet older than this is a leftover


@dataclass
class Outcome:
    exit_code: ExitCode
    result: str
    message: str
    evaluation: Evaluation | None = None
    done_after: dict[str, float] = field(default_factory=dict)
    daemonset: dict[str, Any] | None = None


# ---------------------------------------------------------------------------- the one exit path


def execute(settings: Settings, *, connector: Callable[..., Connection] = connect) -> Outcome:
    """Run `settings.command`; every failure becomes an `Outcome` with its exit code."""
    started, started_wall = time.monotonic(), _now_iso()
    job: Job | None = None
    run: Run | None = None
    with _Signals() as signals:
        try:
            job = resolve_job(settings)
            connection = connector(
                kubeconfig=settings.kubeconfig,
                context=settings.context,
                namespace=settings.namespace,
            )
            run = Run(settings=settings, job=job, connection=connection, hold=signals.held)
            try:
                outcome = run.check() if settings.command == "check" else run.await_images()
            except DeadlineReached as error:  # the API failed until the time was up
                outcome = run.timed_out(cause=error)
        except Interrupted as interrupted:
            outcome = _failed(interrupted, run, exit_code=interrupted.code, result="interrupted")
        except AwaiterError as error:
            outcome = _failed(error, run, exit_code=error.exit_code, result=_result_of(error))
        finally:
            signals.defer()  # a signal now must not cut the cleanup short
            if run is not None:
                run.close()
        if signals.deferred is not None and outcome.result != "interrupted":
            late = Interrupted(signals.deferred)
            outcome = _failed(late, run, exit_code=late.code, result="interrupted")
    if run is not None and run.daemonset is not None:
        outcome.daemonset = dict(run.daemonset)
    if settings.report:
        _write_report(settings, job, outcome, run, started, started_wall)
    return outcome


def _failed(error: AwaiterError, run: Run | None, *, exit_code: ExitCode, result: str) -> Outcome:
    return Outcome(
        exit_code=exit_code,
        result=result,
        message=error.one_line(),
        evaluation=run.evaluation if run else None,
        done_after=run.done_after if run else {},
    )


def _result_of(error: AwaiterError) -> str:
    if isinstance(error, UsageError) or error.exit_code is ExitCode.USAGE:
        return "bad-input"
    return "api-error"


def _write_report(
    settings: Settings,
    job: Job | None,
    outcome: Outcome,
    run: Run | None,
    started: float,
    started_wall: str,
) -> None:
    report = build_report(
        command=settings.command,
        result=outcome.result,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        images=job.images if job else (),
        namespace=run.namespace if run else (settings.namespace or ""),
        evaluation=outcome.evaluation,
        done_after=outcome.done_after,
        daemonset=outcome.daemonset,
        started_at=started_wall,
        finished_at=_now_iso(),
        duration=time.monotonic() - started,
    )
    text = json.dumps(report, indent=2) + "\n"
    try:
        if settings.report == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(str(settings.report)).write_text(text, encoding="utf-8")
    except OSError as error:
        log.error("report.unwritable", path=settings.report, error=str(error))


class _Signals:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while the run works, so that
    `finally` blocks clean up; once cleanup starts (`defer`), a signal is only recorded, so that
    nothing cuts the DaemonSet's deletion short, and the exit code still reports it."""

    def __init__(self) -> None:
        self.deferred: str | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
            }
        return self

    def __exit__(self, *_: object) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)

    def defer(self) -> None:
        self._deferring = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a signal back while the block runs, then raise it. Starting a thread must not
        be cut in half: an exception raised inside `Thread.start` leaves the thread half-born
        (a traceback from its bootstrap, and the wrong exit code)."""
        if self._deferring:
            yield
            return
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.deferred is not None:
            name, self.deferred = self.deferred, None
            self._deferring = True
            raise Interrupted(name)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._deferring:
            self.deferred = self.deferred or name
            return
        self._deferring = True  # a second signal during cleanup is only recorded
        raise Interrupted(name)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------- one run


class Run:
    """One check or await: caches, the DaemonSet it may own, and what it has seen."""

    def __init__(
        self,
        *,
        settings: Settings,
        job: Job,
        connection: Connection,
        timing: WatchTiming | None = None,
        hold: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.settings = settings
        self._hold = hold  # holds signals back while a thread starts
        self.job = job
        self.namespace = connection.namespace
        self.started = time.monotonic()
        self.deadline = self.started + settings.timeout if settings.timeout > 0 else None
        self.kube = Kube(connection.client, deadline=self.deadline)
        self.run_id = secrets.token_hex(4)
        self.wake = threading.Event()
        self.timing = timing = timing or WatchTiming()
        wanted = frozenset(image.key for image in job.images)
        self.nodes: Informer[NodeState] = Informer(
            kube=self.kube,
            path="/api/v1/nodes",
            name="nodes",
            wake=self.wake,
            timing=timing,
            codec=NodeCodec(wanted=wanted),
        )
        self.pods: Informer[PullerPod] | None = None
        self.daemonsets: Informer[str] | None = None
        self.daemonset: dict[str, Any] | None = None
        self.evaluation: Evaluation | None = None
        self.done_after: dict[str, float] = {}
        self.failing_since: dict[tuple[str, str], float] = {}
        self._logged_excluded: set[tuple[str, str]] = set()
        self._last_progress: tuple[Any, ...] = ()
        self._last_progress_at = 0.0
        self._recreations = 0
        self._confirmed_at = float("-inf")
        log.info(
            "run.started",
            command=settings.command,
            run_id=self.run_id,
            namespace=self.namespace,
            images=[i.original for i in job.images],
            source=job.source,
            timeout=settings.timeout or None,
        )

    # ------------------------------------------------------------------ commands

    def check(self) -> Outcome:
        """Read-only: list nodes once and judge them on node.status.images alone."""
        self._check_namespace(required=False)
        evaluation = self._evaluate(self.nodes.list_once(), [])
        if evaluation.done:
            return self._success(evaluation)
        missing = len(evaluation.verdicts) - evaluation.count(NodeStatus.DONE)
        message = (
            f"images missing on {missing} of {len(evaluation.verdicts)} target nodes: "
            f"{not_done_lines(evaluation)}"
        )
        log.warning("check.missing", message=message)
        return self._outcome(ExitCode.IMAGES_MISSING, "missing", message)

    def await_images(self) -> Outcome:
        with self._hold():
            self.nodes.start()
        self._wait_synced(self.nodes)
        evaluation = self._evaluate(self.nodes.snapshot(), [])
        if evaluation.done:
            log.info(
                "run.fast_path",
                detail="every target node already has every image; nothing was created",
            )
            return self._success(evaluation)
        for image in self.job.not_in_spec:
            log.warning(
                "image.not_in_spec",
                image=image.original,
                detail="the spec's pod never pulls this image; only the nodes' own "
                "status.images can show it present",
            )
        self._check_namespace(required=True)
        self._sweep_stale()
        self._create_daemonset(skip_nodes=self._done_nodes())
        selector = run_selector(self.run_id)
        self.pods = Informer(
            kube=self.kube,
            path=f"/api/v1/namespaces/{self.namespace}/pods",
            name="pods",
            label_selector=selector,
            codec=JsonCodec(puller_pod_from_json),
            wake=self.wake,
            timing=self.timing,
        )
        self.daemonsets = Informer(
            kube=self.kube,
            path=f"/apis/apps/v1/namespaces/{self.namespace}/daemonsets",
            name="daemonsets",
            label_selector=selector,
            wake=self.wake,
            timing=self.timing,
            codec=JsonCodec(lambda raw: str((raw.get("metadata") or {}).get("uid", ""))),
        )
        with self._hold():
            self.pods.start()
            self.daemonsets.start()
        self._wait_synced(self.pods)
        self._wait_synced(self.daemonsets)
        return self._loop()

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> Outcome:
        assert self.pods is not None
        interval = self.settings.interval
        next_tick = time.monotonic()
        while True:
            self._raise_cache_errors()
            self._keep_daemonset_alive()
            evaluation = self._evaluate(self.nodes.snapshot(), self.pods.snapshot().values())
            if evaluation.failures:
                return self._pull_failed(evaluation)
            if evaluation.done:
                return self._success(evaluation)
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return self.timed_out()
            while next_tick <= now:
                next_tick += interval
            until = min(next_tick, self.deadline) if self.deadline is not None else next_tick
            self.wake.wait(max(0.0, until - now))
            self.wake.clear()
            time.sleep(MIN_EVALUATION_GAP)  # coalesce a burst of events into one evaluation

    def _evaluate(self, nodes: dict[str, NodeState], pods: Any) -> Evaluation:
        now = time.monotonic()
        evaluation = evaluate(
            nodes=nodes,
            pods=pods,
            images=self.job.images,
            placement=self.job.placement,
            include_cordoned=self.settings.include_cordoned,
            now=now,
            failing_since=self.failing_since,
            grace=self.settings.pull_failure_grace,
        )
        self.failing_since = dict(evaluation.failing_since)
        self.evaluation = evaluation
        self._note_changes(evaluation, now)
        return evaluation

    def _note_changes(self, evaluation: Evaluation, now: float) -> None:
        small = len(evaluation.verdicts) + len(evaluation.excluded) <= 100
        for name, reason in evaluation.excluded.items():
            if (name, reason) not in self._logged_excluded:
                self._logged_excluded.add((name, reason))
                (log.info if small else log.debug)("node.excluded", node=name, reason=reason)
        for verdict in evaluation.verdicts:
            if verdict.status is NodeStatus.DONE and verdict.node not in self.done_after:
                self.done_after[verdict.node] = now - self.started
                (log.info if small else log.debug)(
                    "node.done", node=verdict.node, after=round(now - self.started, 1)
                )
        fields = progress_fields(evaluation)
        key = tuple(sorted(fields.items()))
        since = now - self._last_progress_at
        if (key != self._last_progress and since >= self.settings.interval) or since >= HEARTBEAT:
            self._last_progress, self._last_progress_at = key, now
            log.info("progress", **fields)

    def _wait_synced(self, informer: Informer[Any]) -> None:
        while not informer.synced.is_set():
            self._raise_cache_errors()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise DeadlineReached(f"{informer.name} could not be read from the API in time")
            self.wake.wait(0.5)
            self.wake.clear()

    def _raise_cache_errors(self) -> None:
        for informer in (self.nodes, self.pods, self.daemonsets):
            if informer is not None and informer.error is not None:
                raise informer.error

    # ------------------------------------------------------------------ outcomes

    def _success(self, evaluation: Evaluation) -> Outcome:
        targets = len(evaluation.verdicts)
        if targets == 0:
            message = f"no target nodes ({len(evaluation.excluded)} excluded); nothing to await"
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        else:
            message = f"all {targets} target nodes have all {len(self.job.images)} images"
        log.info(
            "run.succeeded", message=message, seconds=round(time.monotonic() - self.started, 2)
        )
        return self._outcome(ExitCode.OK, "success", message)

    def _pull_failed(self, evaluation: Evaluation) -> Outcome:
        failures = evaluation.failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
        message = (
            f"image {first.image} cannot be pulled on node {first.node}: {first.reason}: "
            f"{first.message}{more}; fix the reference, registry access or pull secret"
        )
        for failure in failures:
            log.error(
                "image.pull_failed",
                node=failure.node,
                image=failure.image,
                reason=failure.reason,
                message=failure.message,
            )
        return self._outcome(ExitCode.PULL_FAILED, "pull-failed", message)

    def timed_out(self, *, cause: DeadlineReached | None = None) -> Outcome:
        """The time is up: exit 1, or 0 with `--on-timeout succeed`. `cause` is an API that
        kept failing until the deadline, which is a timeout too, not an API error."""
        evaluation = self.evaluation
        if evaluation is None:
            message = f"timed out after {self.settings.timeout:g}s before any node was judged"
        else:
            waiting = len(evaluation.verdicts) - evaluation.count(NodeStatus.DONE)
            message = (
                f"timed out after {self.settings.timeout:g}s with images missing on "
                f"{waiting} of {len(evaluation.verdicts)} target nodes: "
                f"{not_done_lines(evaluation)}"
            )
        if cause is not None:
            message += f" ({cause.message})"
        if self.settings.on_timeout == "succeed":
            log.warning("run.timeout_ignored", message=message)
            return self._outcome(ExitCode.OK, "timeout", message + " (--on-timeout succeed)")
        log.error("run.timed_out", message=message)
        return self._outcome(
            ExitCode.IMAGES_MISSING,
            "timeout",
            message + "; raise --timeout or see the report for each node",
        )

    def _outcome(self, code: ExitCode, result: str, message: str) -> Outcome:
        return Outcome(
            exit_code=code,
            result=result,
            message=message,
            evaluation=self.evaluation,
            done_after=dict(self.done_after),
        )

    # ------------------------------------------------------------------ the DaemonSet

    def _check_namespace(self, *, required: bool) -> None:
        """Fail early, before creating anything, when the namespace does not exist.

        Only the API's own NotFound for the namespace proves that; a bare 404 (a proxy, an API
        that does not serve namespaces) or a 403 leaves it unverified: the create will tell."""
        try:
            self.kube.request("GET", f"/api/v1/namespaces/{self.namespace}")
        except NamespaceNotFound:
            raise  # already says which namespace and what to do
        except ApiError as error:
            if error.status not in (403, 404) and required:
                raise
            log.debug("namespace.unverified", namespace=self.namespace, error=error.message)

    def _owner(self) -> Owner | None:
        name, uid = os.environ.get("POD_NAME"), os.environ.get("POD_UID")
        namespace = os.environ.get("POD_NAMESPACE") or self.namespace
        if name and uid:
            return Owner(name=name, uid=uid, namespace=namespace)
        return None

    def _daemonsets_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/daemonsets"

    def _done_nodes(self) -> list[str]:
        if self.evaluation is None:
            return []
        return [v.node for v in self.evaluation.verdicts if v.status is NodeStatus.DONE]

    def _create_daemonset(self, *, skip_nodes: Collection[str] = ()) -> None:
        body = prepare_for_run(
            self.job.manifest,
            run_id=self.run_id,
            namespace=self.namespace,
            owner=self._owner(),
            created_at=_now_iso(),
            skip_nodes=skip_nodes,
        )
        name = body["metadata"]["name"]
        self.daemonset = {
            "name": name,
            "namespace": self.namespace,
            "uid": None,
            "created": False,
            "deleted": False,
        }
        try:
            created = self.kube.request("POST", self._daemonsets_path(), body=body)
        except ApiError as error:
            if error.status == 409:
                created = self._adopt_own(name)
            else:
                if error.status:  # a definite answer: nothing was created
                    self.daemonset = None
                raise
        self.daemonset.update(uid=created["metadata"]["uid"], created=True)
        log.info("daemonset.created", name=name, namespace=self.namespace, run_id=self.run_id)

    def _adopt_own(self, name: str) -> dict[str, Any]:
        """A 409 after a retried create is our own first attempt; anything else is a clash."""
        existing = self.kube.request("GET", f"{self._daemonsets_path()}/{name}")
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(RUN_ID_LABEL) != self.run_id:
            raise NameClash(
                f"a DaemonSet named {name!r} already exists in {self.namespace!r} and was not "
                "created by this run; it was left untouched",
                status=409,
                hint="delete or rename it, or use another namespace",
            )
        return existing

    def _sweep_stale(self) -> None:
        """Delete puller DaemonSets that earlier runs left behind: their owner pod is gone, or
        they have no owner and are older than STALE_AFTER. Only ours: managed-by label, run id
        and creation annotation all present."""
        selector = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
        listing = self.kube.request(
            "GET", self._daemonsets_path(), query={"labelSelector": selector}
        )
        for item in listing.get("items") or []:
            reason = self._stale_reason(item)
            if reason is None:
                continue
            metadata = item["metadata"]
            path = f"{self._daemonsets_path()}/{metadata['name']}"
            try:
                self._delete_by_uid(path, metadata["uid"], kube=self.kube)
            except ApiError as error:
                log.warning("daemonset.sweep_failed", name=metadata["name"], error=error.message)
                continue
            log.info("daemonset.swept", name=metadata["name"], reason=reason)

    def _stale_reason(self, item: dict[str, Any]) -> str | None:
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        created = (metadata.get("annotations") or {}).get(CREATED_AT_ANNOTATION)
        if RUN_ID_LABEL not in labels or not created:
            return None
        owners = [o for o in metadata.get("ownerReferences") or [] if o.get("kind") == "Pod"]
        for owner in owners:
            path = f"/api/v1/namespaces/{self.namespace}/pods/{owner.get('name')}"
            try:
                pod = self.kube.request("GET", path)
            except ApiError as error:
                if error.status == 404:
                    return f"owner pod {owner.get('name')} is gone"
                return None
            if (pod.get("metadata") or {}).get("uid") != owner.get("uid"):
                return f"owner pod {owner.get('name')} was replaced"
            return None
        try:
            born = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        age = time.time() - born
        return f"unowned and {age / 3600:.0f}h old" if age > STALE_AFTER else None

    def _keep_daemonset_alive(self) -> None:
        """Recreate our DaemonSet if someone else deleted it mid-run (a few times at most).

        The cache only hints: a watch that lags (faults, a relist) does not yet hold the object
        just created, so an absence is confirmed by reading the object itself, at most once a
        second, before anything is recreated."""
        if self.daemonsets is None or self.daemonset is None or not self.daemonsets.synced.is_set():
            return
        if self.daemonset["uid"] in self.daemonsets.snapshot().values():
            return
        now = time.monotonic()
        if now - self._confirmed_at < CONFIRM_GAP:
            return
        self._confirmed_at = now
        if self._still_exists():
            return
        if self._recreations >= MAX_RECREATIONS:
            raise ApiError(
                "the puller DaemonSet keeps being deleted by someone else",
                hint="find what deletes DaemonSets labelled "
                "app.kubernetes.io/managed-by=image-awaiter",
            )
        self._recreations += 1
        log.warning("daemonset.vanished", name=self.daemonset["name"], recreating=True)
        self._create_daemonset(skip_nodes=self._done_nodes())

    def _still_exists(self) -> bool:
        """Whether our DaemonSet (this uid) is still there, asked of the API itself."""
        assert self.daemonset is not None
        path = f"{self._daemonsets_path()}/{self.daemonset['name']}"
        try:
            existing = self.kube.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return bool((existing.get("metadata") or {}).get("uid") == self.daemonset["uid"])

    def close(self) -> None:
        """Stop the caches and delete the DaemonSet this run created, unless asked to keep it."""
        for informer in (self.nodes, self.pods, self.daemonsets):
            if informer is not None:
                informer.stop()
        if self.daemonset is None:
            return
        if self.settings.keep_daemonset:
            log.info("daemonset.kept", name=self.daemonset["name"], namespace=self.namespace)
            return
        try:
            self._delete_daemonset()
        except AwaiterError as error:
            log.error(
                "daemonset.cleanup_failed",
                name=self.daemonset["name"],
                namespace=self.namespace,
                error=error.one_line(),
                hint="delete it by hand: kubectl delete daemonset -n "
                f"{self.namespace} {self.daemonset['name']}",
            )

    @staticmethod
    def _delete_by_uid(path: str, uid: str, *, kube: Kube) -> None:
        """Delete the object at `path` only if it still has `uid`: never someone else's."""
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": uid},
        }
        try:
            kube.request("DELETE", path, body=options)
        except ApiError as error:
            if error.status not in (404, 409):  # gone already, or no longer ours
                raise

    def _delete_daemonset(self) -> None:
        assert self.daemonset is not None
        name, uid = self.daemonset["name"], self.daemonset["uid"]
        path = f"{self._daemonsets_path()}/{name}"
        deadline = time.monotonic() + CLEANUP_BUDGET
        cleanup = Kube(self.kube.client, deadline=deadline)
        if uid is None:  # the create may have landed although its answer was lost
            try:
                existing = cleanup.request("GET", path)
            except ApiError as error:
                if error.status == 404:
                    return
                raise
            if ((existing.get("metadata") or {}).get("labels") or {}).get(
                RUN_ID_LABEL
            ) != self.run_id:
                return
            uid = existing["metadata"]["uid"]
        self._delete_by_uid(path, uid, kube=cleanup)
        self.daemonset["deleted"] = True
        log.info("daemonset.deleted", name=name, namespace=self.namespace)
