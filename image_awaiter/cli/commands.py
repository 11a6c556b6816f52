"""The commands: options (options.py) read into immutable `Settings`, the run, and the way
out through `finish` (ending.py), the one function that prints the final `image-awaiter: ...`
line, writes the termination message and exits.

Nothing here decides anything; `awaiting.execute` turns every way a run ends into an outcome.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click

from image_awaiter import __version__
from image_awaiter.cli.ending import Ending, default_termination_log, finish
from image_awaiter.cli.options import ENV, read_settings, shared_options
from image_awaiter.core.errors import AwaiterError, ExitCode, UsageError
from image_awaiter.output.formats import OUTPUT_FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="image-awaiter")
def cli() -> None:
    """Make sure container images are on every Kubernetes node before users need them.

    Exit codes: 0 all images present; 1 timed out (check: images missing); 2 bad usage or input;
    3 Kubernetes API failure; 4 permanent image pull failure; 130/143 interrupted.
    """


@cli.command("await")
@shared_options
@click.option(
    "--dry-run",
    envvar=ENV + "DRY_RUN",
    show_envvar=True,
    is_flag=True,
    help="Print the plan (groups, target nodes, what each lacks) and create nothing; exit 0 "
    "if nothing is missing, 1 otherwise.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(list(OUTPUT_FORMATS)),
    help="With --dry-run: print the DaemonSets it would create as YAML on stdout.",
)
def await_command(**options: Any) -> Ending:
    """Wait until every target node has every image, pulling them with transient DaemonSets
    (one per pull group)."""
    return _run("await", options)


@cli.command("check")
@shared_options
def check_command(**options: Any) -> Ending:
    """Report whether every target node has every image. Read-only: creates nothing."""
    return _run("check", options)


@cli.command("install-helper")
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option(
    "--helper",
    envvar=ENV + "HELPER",
    show_envvar=True,
    metavar="PATH",
    help="The helper binary to copy [default: the image's copy, else this checkout's build].",
)
def install_helper_command(dest: str, helper: str | None) -> Ending:
    """Copy the static no-op helper to DEST (used inside puller pods)."""
    from image_awaiter.cli.helper import install_helper

    try:
        install_helper(Path(dest), helper=Path(helper) if helper else None)
    except AwaiterError as error:
        return Ending(int(error.exit_code), error.one_line())
    return Ending(0)


def _run(command: str, options: dict[str, Any]) -> Ending:
    from image_awaiter.output import logs
    from image_awaiter.run.awaiting import execute

    termination_log = options["termination_log"] or default_termination_log(os.environ)
    try:
        settings = read_settings(command, options, os.environ, termination_log=termination_log)
    except UsageError as error:
        return Ending(int(ExitCode.USAGE), error.one_line(), termination_log)
    logs.configure(log_format=settings.log_format, verbosity=settings.verbosity)
    outcome = execute(settings)
    return Ending(int(outcome.exit_code), outcome.message, termination_log)


def main(argv: Sequence[str] | None = None, *, err: TextIO | None = None) -> NoReturn:
    """Entry point: click's own errors become one line and exit 2, never a traceback."""
    from image_awaiter.cli import gate  # noqa: F401 (adds the `gate` command to `cli`)

    try:
        ending = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="image-awaiter",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exit_:  # --help, --version
        ending = Ending(exit_.exit_code)
    except click.ClickException as error:
        message = f"{error.format_message()}; see image-awaiter --help"
        termination_log = os.environ.get(ENV + "TERMINATION_LOG") or default_termination_log(
            os.environ
        )
        ending = Ending(int(ExitCode.USAGE), message, termination_log)
    except click.Abort:  # ctrl-C at a prompt
        ending = Ending(int(ExitCode.SIGINT))
    finish(ending if isinstance(ending, Ending) else Ending(int(ending or 0)), err=err)
