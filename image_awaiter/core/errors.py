"""Exit codes and the one error hierarchy that carries them.

Every failure the program can report is an `AwaiterError` whose class says which exit code it
maps to; the CLI is the only place that turns one into `sys.exit`. A signal is the exception:
`Interrupted` stands beside the hierarchy, out of reach of `except Exception`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    IMAGES_MISSING = 1
    USAGE = 2
    API = 3
    PULL_FAILED = 4
    SIGINT = 130
    SIGTERM = 143


def one_line(text: str) -> str:
    """Any text on one line: a runtime's or registry's multi-line error (CRI-O relays a
    registry's `errors:` one per line, cri-o#2331) folded, each line break a space after a
    line ending in punctuation (`errors: denied: ...`) and a comma otherwise."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    folded = lines[0] if lines else ""
    for line in lines[1:]:
        folded += (" " if folded[-1] in ":;,." else ", ") + line
    return folded


class AwaiterError(Exception):
    """A failure with a one-line message and, optionally, what to do about it."""

    exit_code: ExitCode = ExitCode.API  # per class

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


class Unreachable(ApiError):
    """The API kept failing (connection errors, timeouts, 429, 5xx) for a request's whole retry
    budget: no definite answer came, so a create may or may not have landed."""


class DeadlineReached(ApiError):
    """The API kept failing until the run's deadline: the run has timed out, which
    `--on-timeout` decides about, rather than failed for good."""


class Unauthorized(ApiError):
    """HTTP 401: the credentials were rejected."""


class Forbidden(ApiError):
    """HTTP 403: this identity may not do what was asked; the hint names what to grant."""


class NotFound(ApiError):
    """HTTP 404: the object (or, without a Status naming it, the path) does not exist."""


class NamespaceNotFound(NotFound):
    """The API said, in a NotFound Status naming kind `namespaces`, that the namespace is absent."""


class Conflict(ApiError):
    """HTTP 409: the name is taken, or a precondition (uid, resourceVersion) no longer holds."""


class BadRequest(ApiError):
    """HTTP 400: the server refused the request as malformed (e.g. a parameter it does not know)."""


class InvalidObject(ApiError):
    """The API rejected an object we sent as invalid (HTTP 422): bad input, not a cluster fault."""

    exit_code = ExitCode.USAGE


class Gone(ApiError):
    """HTTP 410: a resourceVersion or continue token expired; the caller relists."""


class NameClash(Conflict):
    """An object with our name exists and is not ours."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; cleanup has run. `exit_code` is 130 or 143 by the signal.

    A `BaseException`, as `KeyboardInterrupt` is, not an `AwaiterError`: the signal handler
    raises it wherever the main thread happens to be, and an `except AwaiterError` or `except
    Exception` there (recording an Event on the awaiter's own pod drops any `AwaiterError`;
    parsing an image reference catches `Exception`) would swallow the signal, and the run would
    go on until the kubelet's SIGKILL. Only `awaiting.execute` catches it; it reads like an
    `AwaiterError` (`exit_code`, `message`, `one_line`)."""

    def __init__(self, signal_name: str) -> None:
        message = f"interrupted by {signal_name}; the puller DaemonSet was cleaned up"
        super().__init__(message)
        self.message = message
        self.signal_name = signal_name
        self.exit_code = ExitCode.SIGTERM if signal_name == "SIGTERM" else ExitCode.SIGINT

    def one_line(self) -> str:
        return self.message
