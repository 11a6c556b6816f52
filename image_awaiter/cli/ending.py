"""The one way out of the process: `finish` prints the final `image-awaiter: ...` line (on
failure), writes it to the termination message file, and exits with the run's code."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO

import click
import structlog

from image_awaiter.core.errors import one_line

# The kubelet mounts the container's termination message file here (terminationMessagePath).
POD_TERMINATION_LOG = Path("/dev/termination-log")

log = structlog.get_logger("image_awaiter")


@dataclass(frozen=True, slots=True)
class Ending:
    """How the process ends: its exit code, the final line (None: print nothing), and where
    the termination message goes."""

    code: int
    message: str | None = None
    termination_log: str | None = None


def in_a_pod(environ: Mapping[str, str]) -> bool:
    """The downward API names the pod, or the in-cluster configuration is what connects."""
    in_cluster = "KUBERNETES_SERVICE_HOST" in environ and "KUBECONFIG" not in environ
    return bool(environ.get("POD_NAME")) or in_cluster


def default_termination_log(environ: Mapping[str, str]) -> str | None:
    """/dev/termination-log in a pod, when the kubelet has mounted it there; None elsewhere, so
    that a run on a laptop (or as root on a host) never creates files under /dev."""
    if in_a_pod(environ) and POD_TERMINATION_LOG.is_file():
        return str(POD_TERMINATION_LOG)
    return None


def finish(ending: Ending, *, err: TextIO | None = None) -> NoReturn:
    """The one exit: print the final line on failure, write it to the termination message file
    (on success too, so `kubectl describe` of the hook pod tells why), exit with the code."""
    line = f"image-awaiter: {one_line(ending.message)}" if ending.message else None
    if line is not None and ending.code != 0:
        click.echo(line, err=True, file=err)
    if line is not None and ending.termination_log:
        try:
            Path(ending.termination_log).write_text(line + "\n", encoding="utf-8")
        except OSError as error:
            log.error("termination_log.unwritable", path=ending.termination_log, error=str(error))
    sys.exit(ending.code)
