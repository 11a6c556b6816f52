"""The immutable settings a run is made of, and the job they describe: which DaemonSet, which
images, which placement. Resolving the job reads the spec file but never the cluster."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from image_awaiter.errors import UsageError
from image_awaiter.logs import LogFormat
from image_awaiter.pullers import (
    Owner,
    PullerSettings,
    generate_daemonset,
    parse_manifest,
    pod_images,
    unique_images,
)
from image_awaiter.references import ImageKey, ImageRef
from image_awaiter.targeting import Placement, placement_from_pod_spec

Command = Literal["await", "check"]


@dataclass(frozen=True, slots=True)
class Settings:
    command: Command
    daemonset_spec: str | None = None
    images: tuple[str, ...] = ()
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    interval: float = 2.0
    timeout: float = 600.0  # 0: never
    on_timeout: Literal["fail", "succeed"] = "fail"
    pull_failure_grace: float = 90.0
    include_cordoned: bool = False
    keep_daemonset: bool = False
    report: str | None = None
    log_format: LogFormat = "auto"
    verbosity: int = 0
    puller: PullerSettings = field(default_factory=PullerSettings)
    termination_log: str | None = None  # where the final one-line message also goes
    # Read once from the environment at the edge (cli.py): the downward API's pod identity,
    # and the service account's namespace file when running in a pod.
    pod_name: str | None = None
    pod_uid: str | None = None
    pod_namespace: str | None = None
    in_cluster_namespace: str | None = None

    def owner(self, *, default_namespace: str) -> Owner | None:
        """The awaiter's own pod, to own what it creates, when the downward API names it."""
        if self.pod_name and self.pod_uid:
            namespace = self.pod_namespace or default_namespace
            return Owner(name=self.pod_name, uid=self.pod_uid, namespace=namespace)
        return None

    def own_namespace(self, *, in_cluster: bool) -> str | None:
        """The namespace the awaiter's pod runs in, when it runs in one."""
        return self.pod_namespace or (self.in_cluster_namespace if in_cluster else None)


@dataclass(frozen=True, slots=True)
class Job:
    """What to await: the images (deduplicated), the puller DaemonSet and where it may land."""

    images: tuple[ImageRef, ...]
    manifest: dict[str, Any]
    placement: Placement
    source: str  # the spec file, or "generated"
    # --image references whose repository the spec's pod never pulls: only the nodes' own
    # status.images can show them present.
    not_in_spec: tuple[ImageRef, ...] = ()

    @property
    def keys(self) -> frozenset[ImageKey]:
        """What presence of the awaited images is matched on."""
        return frozenset(image.key for image in self.images)


def resolve_job(settings: Settings) -> Job:
    if settings.interval <= 0:
        raise UsageError("--interval must be greater than zero")
    if settings.timeout < 0:
        raise UsageError("--timeout must not be negative (0 means never)")
    requested = unique_images(settings.images)
    if settings.daemonset_spec is not None:
        source = "stdin" if settings.daemonset_spec == "-" else settings.daemonset_spec
        manifest = parse_manifest(_read(settings.daemonset_spec), source=source)
        pod_spec = manifest["spec"]["template"]["spec"]
        pulled = unique_images(pod_images(pod_spec))
        images = requested or pulled
        repositories = {image.name for image in pulled}
        not_in_spec = tuple(image for image in requested if image.name not in repositories)
    else:
        if not requested:
            raise UsageError("no images to await", hint="give --image REF or --daemonset-spec PATH")
        source = "generated"
        images = requested
        not_in_spec = ()
        manifest = generate_daemonset(images, settings.puller)
        pod_spec = manifest["spec"]["template"]["spec"]
    return Job(
        images=tuple(images),
        manifest=manifest,
        placement=placement_from_pod_spec(pod_spec),
        source=source,
        not_in_spec=not_in_spec,
    )


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--daemonset-spec: file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"--daemonset-spec: {path} is a directory") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--daemonset-spec: cannot read {path}: {error}") from None
