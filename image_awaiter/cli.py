"""The command line: parse options into immutable `Settings`, run, exit with the outcome's code.

Nothing here decides anything; `awaiting.execute` is the one place failures become exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from image_awaiter import __version__
from image_awaiter.durations import parse_duration
from image_awaiter.errors import AwaiterError, ExitCode, UsageError
from image_awaiter.pullers import DEFAULT_HELPER_IMAGE, DEFAULT_PAUSE_IMAGE, PullerSettings

F = TypeVar("F", bound=Callable[..., Any])
ENV = "IMAGE_AWAITER_"


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


def _option(*names: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*names, envvar=ENV + env, show_envvar=True, **kwargs)


def shared_options(function: F) -> F:
    """Options of both `await` and `check`, each also read from IMAGE_AWAITER_<NAME>."""
    decorators = [
        _option(
            "--daemonset-spec",
            env="DAEMONSET_SPEC",
            metavar="PATH",
            help="DaemonSet manifest (YAML or JSON, '-' for stdin); its pod template's "
            "images are awaited unless --image is given.",
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
            help="Namespace of the DaemonSet [default: in-cluster, else the context's, "
            "else default].",
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
        _option("-v", "--verbose", env="VERBOSE", count=True, help="More detail (debug)."),
        _option("-q", "--quiet", env="QUIET", is_flag=True, help="Warnings and errors only."),
        # The generated puller DaemonSet (used with --image and no --daemonset-spec).
        _option(
            "--pull-method",
            env="PULL_METHOD",
            type=click.Choice(["initContainers", "imageVolumes"]),
            default="initContainers",
            show_default=True,
            help="initContainers: each image runs a copied static no-op helper; "
            "imageVolumes: each image is an image volume (ImageVolume feature).",
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
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="image-awaiter")
def cli() -> None:
    """Make sure container images are on every Kubernetes node before users need them.

    Exit codes: 0 all images present; 1 timed out (check: images missing); 2 bad usage or input;
    3 Kubernetes API failure; 4 permanent image pull failure; 130/143 interrupted.
    """


@cli.command("await")
@shared_options
def await_command(**options: Any) -> int:
    """Wait until every target node has every image, pulling them with a transient DaemonSet."""
    return _run("await", options)


@cli.command("check")
@shared_options
def check_command(**options: Any) -> int:
    """Report whether every target node has every image. Read-only: creates nothing."""
    return _run("check", options)


@cli.command("install-helper")
@click.argument("dest", type=click.Path(dir_okay=False))
def install_helper_command(dest: str) -> int:
    """Copy the static no-op helper to DEST (used inside puller pods)."""
    from pathlib import Path

    from image_awaiter.helper import install_helper

    try:
        install_helper(Path(dest))
    except AwaiterError as error:
        click.echo(f"image-awaiter: {error.one_line()}", err=True)
        return int(error.exit_code)
    return 0


def _run(command: str, options: dict[str, Any]) -> int:
    from image_awaiter import logs
    from image_awaiter.awaiting import execute
    from image_awaiter.settings import Settings

    logs.configure(
        log_format=options["log_format"], verbosity=-1 if options["quiet"] else options["verbose"]
    )
    try:
        settings = Settings(
            command="await" if command == "await" else "check",
            daemonset_spec=options["daemonset_spec"],
            images=tuple(options["images"]),
            namespace=options["namespace"],
            kubeconfig=options["kubeconfig"],
            context=options["context"],
            interval=options["interval"],
            timeout=options["timeout"],
            on_timeout=options["on_timeout"],
            pull_failure_grace=options["pull_failure_grace"],
            include_cordoned=options["include_cordoned"],
            keep_daemonset=options["keep_daemonset"],
            report=options["report"],
            log_format=options["log_format"],
            verbosity=-1 if options["quiet"] else options["verbose"],
            puller=_puller_settings(options),
        )
    except UsageError as error:
        click.echo(f"image-awaiter: {error.one_line()}", err=True)
        return int(ExitCode.USAGE)
    outcome = execute(settings)
    if outcome.exit_code != ExitCode.OK:
        click.echo(f"image-awaiter: {outcome.message}", err=True)
    return int(outcome.exit_code)


def _puller_settings(options: dict[str, Any]) -> PullerSettings:
    return PullerSettings(
        method=options["pull_method"],
        helper_image=options["helper_image"],
        pause_image=options["pause_image"],
        node_selector=parse_node_selectors(options["node_selectors"]),
        tolerations=tuple(parse_toleration(t) for t in options["tolerations"]),
        priority_class_name=options["priority_class_name"],
        image_pull_secrets=tuple(options["image_pull_secrets"]),
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


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: click's own errors become one line and exit 2, never a traceback."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="image-awaiter",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.ClickException as error:
        click.echo(f"image-awaiter: {error.format_message()} (see --help)", err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.Abort:
        sys.exit(int(ExitCode.SIGINT))
    sys.exit(int(code or 0))
