"""The immutable settings a run is made of, and the job they describe: one or more pull groups,
each a puller DaemonSet, its images and its placement. Resolving the job reads the spec files or
the workload manifests but never the cluster."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement
from image_awaiter.core.readiness import FailureRules
from image_awaiter.core.references import ImageKey, ImageRef
from image_awaiter.core.targeting import placement_from_pod_spec
from image_awaiter.spec.generating import generate_daemonset
from image_awaiter.spec.generating import with_pull_method as rebuild_puller
from image_awaiter.spec.pullers import (
    DEFAULT_NAME,
    Owner,
    PullerSettings,
    awaited_images,
    daemonset_base_name,
    parse_daemonsets,
    unique_images,
)

if TYPE_CHECKING:  # a type only: outcomes are imported by the run
    from image_awaiter.core.outcomes import Skipped

Command = Literal["await", "check"]
LogFormat = Literal["auto", "console", "json"]
DEFAULT_GROUP = "default"  # the one group of `--image` alone


@dataclass(frozen=True, slots=True)
class Judging:
    """What every group's judge reads of the settings."""

    include_cordoned: bool
    grace: float  # how long a pull error may persist before it fails the run
    rules: FailureRules


@dataclass(frozen=True, slots=True)
class Settings:
    command: Command
    daemonset_specs: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()  # --from-manifests paths
    dry_run: bool = False
    output: str | None = None  # -o FORMAT (output.formats): the DaemonSets a dry run would create
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    interval: float = 2.0
    timeout: float = 600.0  # 0: never
    on_timeout: Literal["fail", "succeed"] = "fail"
    pull_failure_grace: float = 90.0
    fail_fast: bool = True  # permanent pull errors end the run at once, without the grace
    on_platform_mismatch: Literal["exclude", "fail"] = "exclude"
    progress: bool | None = None  # the live view: None decides by --log-format and the TTY
    events: bool = True  # Kubernetes Events on the awaiter's own pod, when it runs in one
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

    @property
    def judging(self) -> Judging:
        return Judging(
            include_cordoned=self.include_cordoned,
            grace=self.pull_failure_grace,
            rules=FailureRules(
                fail_fast=self.fail_fast, platform_mismatch=self.on_platform_mismatch
            ),
        )

    def own_namespace(self, *, in_cluster: bool) -> str | None:
        """The namespace the awaiter's pod runs in, when it runs in one."""
        return self.pod_namespace or (self.in_cluster_namespace if in_cluster else None)


@dataclass(frozen=True, slots=True)
class Group:
    """One pull group: images awaited on the nodes where its puller DaemonSet may land."""

    name: str  # DNS-1123 label safe: the group label's value
    images: tuple[ImageRef, ...]
    manifest: dict[str, Any]
    placement: Placement
    # --image references whose repository the group's pod never pulls: only the nodes' own
    # status.images can show them present.
    not_in_spec: tuple[ImageRef, ...] = ()
    workloads: tuple[str, ...] = ()  # `Kind/name` of the workloads it was derived from

    @property
    def keys(self) -> frozenset[ImageKey]:
        return frozenset(image.key for image in self.images)


@dataclass(frozen=True, slots=True)
class Job:
    """What to await: one or more pull groups, and the custom resources skipped on the way."""

    groups: tuple[Group, ...]
    source: str  # the spec files, the manifests, or "generated"
    skipped: tuple[Skipped, ...] = ()  # custom resources whose images are not awaited
    generated: bool = False  # its pullers are generated (--image alone, --from-manifests)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        """Every awaited image once, in group order."""
        by_key: dict[ImageKey, ImageRef] = {}
        for group in self.groups:
            for image in group.images:
                by_key.setdefault(image.key, image)
        return tuple(by_key.values())

    @property
    def keys(self) -> frozenset[ImageKey]:
        """What presence of the awaited images is matched on."""
        return frozenset(image.key for image in self.images)

    @property
    def not_in_spec(self) -> tuple[ImageRef, ...]:
        return tuple({i.key: i for g in self.groups for i in g.not_in_spec}.values())


def resolve_job(settings: Settings) -> Job:
    if settings.interval <= 0:
        raise UsageError(
            "--interval must be greater than zero", hint="use a positive duration such as 2s"
        )
    if settings.timeout < 0:
        raise UsageError(
            "--timeout must not be negative (0 means never)",
            hint="use a duration such as 10m, or 0 for never",
        )
    if settings.output is not None and not settings.dry_run:
        raise UsageError(
            "-o/--output prints the DaemonSets a --dry-run would create",
            hint="add --dry-run or drop -o",
        )
    if settings.output is not None and settings.report == "-":
        raise UsageError(
            "-o yaml and --report - would both write to stdout", hint="write the report to a file"
        )
    if settings.daemonset_specs and settings.manifests:
        raise UsageError(
            "--daemonset-spec and --from-manifests cannot be combined",
            hint="give the puller DaemonSets, or the workloads to derive them from",
        )
    requested = unique_images(settings.images)
    if settings.daemonset_specs:
        job = _from_specs(settings.daemonset_specs, requested)
    elif settings.manifests:
        job = _from_manifests(settings)
    else:
        if not requested:
            raise UsageError(
                "no images to await",
                hint="give --image REF, --daemonset-spec PATH or --from-manifests PATH",
            )
        manifest = generate_daemonset(requested, settings.puller)
        group = Group(
            name=DEFAULT_GROUP,
            images=tuple(requested),
            manifest=manifest,
            placement=placement_from_pod_spec(manifest["spec"]["template"]["spec"]),
        )
        job = Job(groups=(group,), source="generated", generated=True)
    _check_names(job.groups)
    return job


def _from_specs(paths: tuple[str, ...], requested: list[ImageRef]) -> Job:
    """Each DaemonSet of each spec file is one group; `requested` narrows what is awaited."""
    manifests: list[dict[str, Any]] = []
    for path in paths:
        source = "stdin" if path == "-" else path
        manifests += parse_daemonsets(_read(path, option="--daemonset-spec"), source=source)
    pulled_by = [unique_images(awaited_images(m["spec"]["template"]["spec"])) for m in manifests]
    everywhere = [  # asked for, but pulled by no group: awaited on every group's nodes
        image
        for image in requested
        if not any(image.name == p.name for pulled in pulled_by for p in pulled)
    ]
    groups = []
    for manifest, pulled in zip(manifests, pulled_by, strict=True):
        repositories = {image.name for image in pulled}
        if requested:
            own = [i for i in requested if i.name in repositories]
            if len(manifests) > 1 and not own:
                continue  # this DaemonSet pulls none of the images asked for
            images, not_in_spec = [*own, *everywhere], tuple(everywhere)
        else:
            images, not_in_spec = pulled, ()
        groups.append(
            Group(
                name=_label_value(daemonset_base_name(manifest)),
                images=tuple(images),
                manifest=manifest,
                placement=placement_from_pod_spec(manifest["spec"]["template"]["spec"]),
                not_in_spec=not_in_spec,
            )
        )
    return Job(groups=tuple(groups), source=", ".join("stdin" if p == "-" else p for p in paths))


def _from_manifests(settings: Settings) -> Job:
    """One generated puller per placement the workloads in the manifests have."""
    from image_awaiter.spec.groups import apply_placement, group_workloads, narrow
    from image_awaiter.spec.manifests import read_manifests

    found = read_manifests(settings.manifests)
    pull_groups = group_workloads(found.workloads)
    if settings.images:
        pull_groups = narrow(pull_groups, settings.images)
    groups = []
    for pull_group in pull_groups:
        manifest = generate_daemonset(pull_group.images, settings.puller)
        name = generated_name(pull_group.name)
        manifest["metadata"]["name"] = name
        template = manifest["spec"]["template"]
        template["spec"] = apply_placement(
            template["spec"], pull_group.placement, group=pull_group.name
        )
        groups.append(
            Group(
                name=pull_group.name,
                images=pull_group.images,
                manifest=manifest,
                placement=placement_from_pod_spec(template["spec"]),
                workloads=tuple(w.ref for w in pull_group.workloads),
            )
        )
    return Job(
        groups=tuple(groups),
        source=", ".join("stdin" if p == "-" else p for p in settings.manifests),
        skipped=found.skipped,
        generated=True,
    )


def with_pull_method(job: Job, puller: PullerSettings) -> Job:
    """The job with each generated puller built for `puller.method` (`--pull-method auto`,
    once decided); a job from spec files is as its files say."""
    if not job.generated:
        return job
    groups = tuple(
        dataclasses.replace(g, manifest=rebuild_puller(g.manifest, g.images, puller))
        for g in job.groups
    )
    return dataclasses.replace(job, groups=groups)


def generated_name(group: str) -> str:
    """`image-awaiter-puller-<group>`, shortened with a hash of the group's name when it would
    not fit before the run id, so that two groups never share a DaemonSet name."""
    name = f"{DEFAULT_NAME}-{group}"
    if len(name) <= 44:
        return name
    digest = hashlib.sha256(group.encode()).hexdigest()[:6]
    return f"{name[: 44 - len(digest) - 1].rstrip('-')}-{digest}"


def _check_names(groups: tuple[Group, ...]) -> None:
    """Each group needs its own DaemonSet name and group label, or they would clash."""
    for what, names in (
        ("DaemonSet name", [daemonset_base_name(g.manifest) for g in groups]),
        ("group name", [g.name for g in groups]),
    ):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsageError(
                f"two pull groups share the {what} {twice[0]!r} (the first 44 characters count)",
                hint="give each DaemonSet its own name",
            )


def _label_value(name: str) -> str:
    """A label value (63 characters, alphanumeric at both ends) from a DaemonSet name."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:63].strip("-_.") or DEFAULT_GROUP


def _read(path: str, *, option: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option}: file not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{option}: {path} is a directory", hint="give a file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"{option}: cannot read {path}: {error}", hint="check the file's permissions"
        ) from None
