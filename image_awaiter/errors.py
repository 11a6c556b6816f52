"""Exit codes and the one error hierarchy that carries them.

Every failure the program can report is an `AwaiterError` whose class says which exit code it
maps to; the CLI is the only place that turns one into `sys.exit`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    IMAGES_MISSING = 1
    USAGE = 2
    API = 3
    PULL_FAILED = 4
    SIGINT = 130
    SIGTERM = 143


class AwaiterError(Exception):
    """A failure with a one-line message and, optionally, what to do about it."""

    exit_code: ClassVar[ExitCode] = ExitCode.API

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(AwaiterError):
    """Bad options or bad input: a file, a manifest, an image reference, a duration."""

    exit_code = ExitCode.USAGE


class ApiError(AwaiterError):
    """The Kubernetes API said no, or could not be reached, and retrying did not help."""

    exit_code = ExitCode.API

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class DeadlineReached(ApiError):
    """The API kept failing until the run's deadline: the run has timed out, which
    `--on-timeout` decides about, rather than failed for good."""


class NamespaceNotFound(ApiError):
    """The API said, in a NotFound Status naming kind `namespaces`, that the namespace is absent."""


class InvalidObject(ApiError):
    """The API rejected an object we sent as invalid (HTTP 422): bad input, not a cluster fault."""

    exit_code = ExitCode.USAGE


class Gone(ApiError):
    """HTTP 410: a resourceVersion or continue token expired; the caller relists."""


class NameClash(ApiError):
    """An object with our name exists and is not ours."""


class Interrupted(AwaiterError):
    """SIGINT or SIGTERM arrived; cleanup has run."""

    exit_code = ExitCode.SIGINT

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}; the puller DaemonSet was cleaned up")
        self.signal_name = signal_name

    @property
    def code(self) -> ExitCode:
        return ExitCode.SIGTERM if self.signal_name == "SIGTERM" else ExitCode.SIGINT
