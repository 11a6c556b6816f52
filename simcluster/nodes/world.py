"""`NodeWorld`: what the HTTP kubelets simulate around them (the registry with its images and
outages, injected pull failures, the time scale), configured in-process by whoever runs them
(the differential tests, `python -m simcluster serve --control-plane real`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from simcluster.nodes.pulling import PullFailure, find_pull_failure, make_pull_failure
from simcluster.nodes.registry import Registry


class NodeWorld:
    def __init__(self, *, unknown_images: str = "present", time_scale: float = 1.0) -> None:
        self.registry = Registry(unknown=unknown_images)
        self.time_scale = time_scale
        self.pull_failures: list[PullFailure] = []
        self._lock = threading.Lock()

    def fail_pull(
        self,
        image: str,
        *,
        kind: str | None = None,
        reason: str = "ErrImagePull",
        message: str | None = None,
        nodes: Iterable[str] | None = None,
        times: int | None = None,
    ) -> None:
        """As `SimCluster.fail_pull`: pulls of `image` ("*": any) fail on `nodes` (default
        all), `times` attempts (default every one), with the runtime's real text for `kind`."""
        failure = make_pull_failure(
            image,
            kind=kind,
            reason=reason,
            message=message,
            nodes=set(nodes) if nodes is not None else None,
            times=times,
        )
        with self._lock:
            self.pull_failures.append(failure)

    def pull_failure(self, key: str, node: str) -> PullFailure | None:
        with self._lock:
            return find_pull_failure(self.pull_failures, key, node)
