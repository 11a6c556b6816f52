"""What a run tells while it works, and decides nothing with: its start, the progress lines
and the live view, and the Kubernetes Events on the awaiter's own pod. `awaiting.Run` calls a
`Teller` at each step of its loop; the pull facts it shows come from `factswatch`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TextIO

import structlog

from image_awaiter.cluster.podevents import PodEvents
from image_awaiter.core.combined import GroupEvaluation, group_progress
from image_awaiter.core.errors import ExitCode
from image_awaiter.core.outcomes import Outcome
from image_awaiter.core.pullfacts import PullFacts
from image_awaiter.core.readiness import Evaluation
from image_awaiter.core.references import ImageKey
from image_awaiter.core.wording import counted
from image_awaiter.output import logs
from image_awaiter.output.liveview import LiveView, live_view_wanted
from image_awaiter.output.logs import Logging
from image_awaiter.output.progress import LivePicture, Progress
from image_awaiter.run.context import RunContext
from image_awaiter.run.factswatch import PullFactsWatch
from image_awaiter.spec.settings import Job

log = structlog.get_logger("image_awaiter")

NOT_IN_SPEC = (
    "the spec's pod never pulls this image; only the nodes' own status.images can show it present"
)


def start_live_view(
    *, watching: bool, progress: bool | None, logging: Logging, stream: TextIO
) -> LiveView | None:
    """The live view on a terminal, for a run that watches (`progress` None: decided by the
    log format and the terminal); log lines then go above it, warnings and errors only (unless
    -v), so that the display is not a scroll of lines."""
    if not watching or not live_view_wanted(stream, logging.log_format, progress):
        return None
    view = LiveView(stream=stream, show_excluded=logging.verbosity > 0)
    view.start()
    logs.configure(
        log_format="console",
        verbosity=logging.verbosity if logging.verbosity > 0 else -1,
        stream=view.writer(),
    )
    return view


def stop_live_view(view: LiveView | None, *, logging: Logging) -> None:
    """Before the final line, which must stand on its own; logging as it was."""
    if view is not None:
        view.stop()
        logs.configure(log_format=logging.log_format, verbosity=logging.verbosity)


def tell_start(job: Job, *, timeout: float) -> None:
    """What the run is about to await, and what it leaves out."""
    log.info(
        "run.started",
        images=[i.original for i in job.images],
        source=job.source,
        groups=[g.name for g in job.groups],
        timeout=timeout or None,
    )
    if len(job.groups) > 1:
        for group in job.groups:
            log.info("group.resolved", group=group.name, images=[i.original for i in group.images])
    for skipped in job.skipped:
        log.warning(
            "manifests.skipped",
            resource=skipped.ref,
            images=list(skipped.images),
            source=skipped.source,
            detail=skipped.reason,
        )


class Teller:
    """Everything one run says about itself: logs, progress, the live view, its own pod's
    Events, and the pull facts behind them."""

    def __init__(
        self,
        context: RunContext,
        *,
        facts: PullFactsWatch,
        view: LiveView | None,
        interval: float,
        pod_events: bool,
    ) -> None:
        """`pod_events`: record Events on the awaiter's own pod (writing runs, when asked)."""
        self._job = context.job
        self._started = context.started
        self.facts = facts
        self.progress = Progress(started=context.started, interval=interval)
        self._picture = (
            LivePicture(view, images=[i.original for i in self._job.images], started=self._started)
            if view is not None
            else None
        )
        owner = context.owner if pod_events else None
        self._pod_events = PodEvents(kube=context.kube, pod=owner, run_id=context.run_id)
        self._platform_logged: set[tuple[str, ImageKey]] = set()

    def observe(
        self, evaluation: Evaluation, groups: Sequence[GroupEvaluation], *, now: float
    ) -> None:
        self.progress.observe(
            evaluation, now=now, groups=group_progress(groups) if len(groups) > 1 else None
        )
        for (node, key), exclusion in evaluation.platform_excluded.items():
            if (node, key) not in self._platform_logged:
                self._platform_logged.add((node, key))
                log.warning(
                    "node.platform_excluded",
                    node=node,
                    image=exclusion.image,
                    reason=exclusion.reason,
                    message=exclusion.message,
                )
        if self._picture is not None:
            self._picture.observe(evaluation, now=now, pulled_bytes=self.facts.facts.pulled_bytes)

    def creating(self) -> None:
        """Pullers are about to be created: what they cannot show."""
        for image in self._job.not_in_spec:
            log.warning("image.not_in_spec", image=image.original, detail=NOT_IN_SPEC)

    def pulling(self, evaluation: Evaluation) -> None:
        """Pullers were created: the plan, on the awaiter's own pod."""
        waiting = len(evaluation.verdicts) - len(evaluation.done_nodes)
        images = ", ".join(i.original for i in self._job.images)
        self._pod_events.record(
            "ImagesPulling",
            f"pulling {counted(len(self._job.images), 'image')} ({images}) on {waiting} of "
            f"{counted(len(evaluation.verdicts), 'target node')} "
            f"({len(evaluation.excluded)} excluded)",
        )

    def succeeded(self, evaluation: Evaluation, message: str) -> None:
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self._started, 2)
        log.info("run.succeeded", message=message, seconds=seconds)
        self._pod_events.record("ImagesReady", message)

    def pull_failed(self, failing: Sequence[GroupEvaluation], message: str) -> None:
        for group in failing:
            for failure in group.evaluation.failures:  # node=, image=, reason=, message=
                log.error("image.pull_failed", group=group.name, **dataclasses.asdict(failure))
        first = failing[0].evaluation.failures[0]
        self._pod_events.record(
            "ImagePullFailed", f"{first.kind or first.reason}: {message}", warning=True
        )

    def timed_out(self, outcome: Outcome) -> None:
        ignored = outcome.exit_code is ExitCode.OK  # --on-timeout succeed
        (log.warning if ignored else log.error)(
            "run.timeout_ignored" if ignored else "run.timed_out", message=outcome.message
        )

    def final(self, last: Evaluation | None) -> PullFacts:
        """The facts as they stand at the end, and the view's last frame."""
        facts = self.facts.fold(force=True)
        if self._picture is not None and last is not None:
            self._picture.observe(
                last, now=time.monotonic(), pulled_bytes=facts.pulled_bytes, final=True
            )
        return facts
