"""The options of `await` and `check` as one table (each also read from IMAGE_AWAITER_<NAME>),
and the options and the environment read once into immutable `Settings`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from image_awaiter.core.durations import parse_duration
from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement, Toleration
from image_awaiter.spec.generating import PULL_METHODS
from image_awaiter.spec.pullers import DEFAULT_HELPER_IMAGE, DEFAULT_PAUSE_IMAGE, PullerSettings
from image_awaiter.spec.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
ENV = "IMAGE_AWAITER_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Duration(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except UsageError as error:
            self.fail(error.one_line(), param, ctx)


DURATION = Duration()


def _option(*names: str, env: str, **kwargs: Any) -> Decorator:
    decorator = click.option(*names, envvar=ENV + env, show_envvar=True, **kwargs)
    decorator.names = names  # type: ignore[attr-defined]  # for shared_options_without
    return decorator


# Options of both `await` and `check`: one row each, in the order --help lists them.
SHARED_OPTIONS: tuple[Decorator, ...] = (
    _option(
        "--daemonset-spec",
        "daemonset_specs",
        env="DAEMONSET_SPEC",
        multiple=True,
        metavar="PATH",
        help="DaemonSet manifests (YAML or JSON, '-' for stdin; repeatable; several "
        "documents or a List per file): each DaemonSet is one pull group, whose pod "
        "template's images are awaited unless --image narrows them.",
    ),
    _option(
        "--from-manifests",
        "manifests",
        env="FROM_MANIFESTS",
        multiple=True,
        metavar="PATH",
        help="Workload manifests (files, directories, '-' for stdin; repeatable), e.g. "
        "`helm template` output: every pod template's images are awaited where that "
        "workload can run, one pull group per placement; --image narrows them.",
    ),
    _option(
        "--image",
        "images",
        env="IMAGE",
        multiple=True,
        metavar="REF",
        help="An image to await (repeatable). Without a spec file, `await` generates a "
        "puller DaemonSet for these.",
    ),
    _option(
        "-n",
        "--namespace",
        env="NAMESPACE",
        metavar="NS",
        help="Namespace of the DaemonSet [default: in-cluster, else the context's, else default].",
    ),
    _option(
        "--kubeconfig",
        env="KUBECONFIG",
        metavar="PATH",
        help="Kubeconfig file, as kubectl (KUBECONFIG is honoured too).",
    ),
    _option("--context", env="CONTEXT", metavar="NAME", help="Kubeconfig context."),
    _option(
        "--interval",
        env="INTERVAL",
        type=DURATION,
        default="2s",
        show_default=True,
        help="Re-evaluation period.",
    ),
    _option(
        "--timeout",
        env="TIMEOUT",
        type=DURATION,
        default="10m",
        show_default=True,
        help="Give up after this long; 0 means never.",
    ),
    _option(
        "--on-timeout",
        env="ON_TIMEOUT",
        type=click.Choice(["fail", "succeed"]),
        default="fail",
        show_default=True,
        help="`succeed` logs a warning and exits 0 so an upgrade is never blocked.",
    ),
    _option(
        "--pull-failure-grace",
        env="PULL_FAILURE_GRACE",
        type=DURATION,
        default="90s",
        show_default=True,
        help="How long ErrImagePull/ImagePullBackOff may persist before exit 4.",
    ),
    _option(
        "--fail-fast/--no-fail-fast",
        env="FAIL_FAST",
        default=True,
        show_default=True,
        help="Exit 4 at once on a permanent pull error (not found, access denied, invalid "
        "reference); --no-fail-fast gives every error the grace period.",
    ),
    _option(
        "--on-platform-mismatch",
        env="ON_PLATFORM_MISMATCH",
        type=click.Choice(["exclude", "fail"]),
        default="exclude",
        show_default=True,
        help="A node for whose OS/architecture an image has no variant: exclude it for "
        "that image, or fail the run.",
    ),
    _option(
        "--progress/--no-progress",
        env="PROGRESS",
        default=None,
        help="Live view on a terminal [default: with --log-format auto on a TTY].",
    ),
    _option(
        "--pod-events/--no-pod-events",
        env="POD_EVENTS",
        default=True,
        show_default=True,
        help="Record Kubernetes Events on the awaiter's own pod when run in one "
        "(POD_NAME, POD_UID, POD_NAMESPACE).",
    ),
    _option(
        "--include-cordoned",
        env="INCLUDE_CORDONED",
        is_flag=True,
        help="Also await nodes marked unschedulable.",
    ),
    _option(
        "--keep-daemonset",
        env="KEEP_DAEMONSET",
        is_flag=True,
        help="Leave the puller DaemonSet in place on exit, for debugging.",
    ),
    _option(
        "--report",
        env="REPORT",
        metavar="PATH",
        help="Write the final JSON report here ('-' for stdout).",
    ),
    _option(
        "--log-format",
        env="LOG_FORMAT",
        type=click.Choice(["auto", "console", "json"]),
        default="auto",
        show_default=True,
        help="auto: console on a terminal, JSON lines otherwise.",
    ),
    _option(
        "--termination-log",
        env="TERMINATION_LOG",
        metavar="PATH",
        help="Also write the final one-line message here [default: /dev/termination-log "
        "when running in a pod and the kubelet mounted it].",
    ),
    _option("-v", "--verbose", env="VERBOSE", count=True, help="More detail (debug)."),
    _option("-q", "--quiet", env="QUIET", is_flag=True, help="Warnings and errors only."),
    # The generated puller DaemonSet (used with --image and no --daemonset-spec).
    _option(
        "--pull-method",
        env="PULL_METHOD",
        type=click.Choice([*PULL_METHODS, "auto"]),
        default="initContainers",
        show_default=True,
        help="initContainers: each image runs a copied static no-op helper; "
        "imageVolumes: each image is an image volume (Kubernetes 1.35+, containerd 2 or "
        "CRI-O 1.30+); auto: imageVolumes where the server and every target node support "
        "them, else initContainers.",
    ),
    _option(
        "--helper-image",
        env="HELPER_IMAGE",
        default=DEFAULT_HELPER_IMAGE,
        show_default=True,
        help="Image holding the static no-op helper.",
    ),
    _option(
        "--pause-image",
        env="PAUSE_IMAGE",
        default=DEFAULT_PAUSE_IMAGE,
        show_default=True,
        help="Image of the puller's long-running container.",
    ),
    _option(
        "--node-selector",
        "node_selectors",
        env="NODE_SELECTOR",
        multiple=True,
        metavar="KEY=VALUE",
        help="nodeSelector of generated pullers (repeatable) [default: "
        "kubernetes.io/os=linux]; '-' for none.",
    ),
    _option(
        "--toleration",
        "tolerations",
        env="TOLERATION",
        multiple=True,
        metavar="KEY[=VALUE]:EFFECT",
        help="Toleration of generated pullers (repeatable); '*' tolerates every taint.",
    ),
    _option(
        "--priority-class-name",
        env="PRIORITY_CLASS_NAME",
        metavar="NAME",
        help="priorityClassName of generated pullers.",
    ),
    _option(
        "--image-pull-secret",
        "image_pull_secrets",
        env="IMAGE_PULL_SECRET",
        multiple=True,
        metavar="NAME",
        help="imagePullSecrets of generated pullers.",
    ),
)


def shared_options(function: F) -> F:
    """Every option of `SHARED_OPTIONS` on `function`, in the table's order."""
    return _shared(function, without=frozenset())


def shared_options_without(*names: str) -> Callable[[F], F]:
    """The shared options but `names` (`gate` has no --timeout, --report, ...)."""
    return lambda function: _shared(function, without=frozenset(names))


def _shared(function: F, *, without: frozenset[str]) -> F:
    for decorator in reversed(SHARED_OPTIONS):
        if not without.intersection(getattr(decorator, "names", ())):
            function = decorator(function)  # type: ignore[assignment]
    return function


def read_settings(
    command: str,
    options: dict[str, Any],
    environ: Mapping[str, str],
    *,
    termination_log: str | None,
) -> Settings:
    """Options and the environment, read once: the downward API's POD_NAME, POD_UID and
    POD_NAMESPACE, and the service account's namespace file."""
    return Settings(
        command="await" if command == "await" else "check",
        daemonset_specs=tuple(options["daemonset_specs"]),
        images=tuple(options["images"]),
        manifests=tuple(options["manifests"]),
        dry_run=bool(options.get("dry_run")),
        output=options.get("output"),
        namespace=options["namespace"],
        kubeconfig=options["kubeconfig"],
        context=options["context"],
        interval=options["interval"],
        timeout=options["timeout"],
        on_timeout=options["on_timeout"],
        pull_failure_grace=options["pull_failure_grace"],
        fail_fast=options["fail_fast"],
        on_platform_mismatch=options["on_platform_mismatch"],
        progress=options["progress"],
        events=options["pod_events"],
        include_cordoned=options["include_cordoned"],
        keep_daemonset=options["keep_daemonset"],
        report=options["report"],
        log_format=options["log_format"],
        verbosity=-1 if options["quiet"] else options["verbose"],
        puller=_puller_settings(options),
        termination_log=termination_log,
        pod_name=environ.get("POD_NAME") or None,
        pod_uid=environ.get("POD_UID") or None,
        pod_namespace=environ.get("POD_NAMESPACE") or None,
        in_cluster_namespace=_read_text(SERVICE_ACCOUNT_NAMESPACE),
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _puller_settings(options: dict[str, Any]) -> PullerSettings:
    return PullerSettings(
        method=options["pull_method"],
        helper_image=options["helper_image"],
        pause_image=options["pause_image"],
        placement=Placement(
            node_selector=tuple(parse_node_selectors(options["node_selectors"]).items()),
            tolerations=tuple(Toleration(**parse_toleration(t)) for t in options["tolerations"]),
            priority_class_name=options["priority_class_name"],
            image_pull_secrets=tuple(options["image_pull_secrets"]),
        ),
    )


def parse_node_selectors(values: Sequence[str]) -> dict[str, str]:
    if not values:
        return {"kubernetes.io/os": "linux"}
    selector: dict[str, str] = {}
    for value in values:
        if value == "-":
            continue
        key, sep, label = value.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --node-selector {value!r}", hint="use KEY=VALUE")
        selector[key] = label
    return selector


def parse_toleration(value: str) -> dict[str, str]:
    """`key=value:Effect` (Equal), `key:Effect` or `key` (Exists), `*` (tolerate everything)."""
    if value == "*":
        return {"operator": "Exists"}
    spec, _, effect = value.partition(":")
    if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise UsageError(
            f"invalid --toleration {value!r}: unknown effect {effect!r}",
            hint="use KEY[=VALUE]:NoSchedule|PreferNoSchedule|NoExecute or '*'",
        )
    key, sep, label = spec.partition("=")
    if not key:
        raise UsageError(f"invalid --toleration {value!r}", hint="use KEY[=VALUE]:EFFECT or '*'")
    toleration = {"key": key, "operator": "Equal" if sep else "Exists"}
    if sep:
        toleration["value"] = label
    if effect:
        toleration["effect"] = effect
    return toleration
