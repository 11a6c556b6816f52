"""`image-awaiter install-helper DEST`: copy the static no-op helper out of the awaiter image.

The helper (helper/noop.c) is what each puller init container runs instead of anything inside
the image it pulls. In the image it lives at /usr/local/bin/image-awaiter-noop and can also copy
itself (`image-awaiter-noop install DEST`), which is what generated pullers use: no Python
start-up inside puller pods. This subcommand is the same copy for scripts and debugging.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

from image_awaiter.core.errors import UsageError

IN_IMAGE = Path("/usr/local/bin/image-awaiter-noop")
REPO_BUILD = Path(__file__).resolve().parents[2] / "build" / "helper"


def find_helper(given: Path | None = None) -> Path:
    """The helper binary: `given` (--helper, $IMAGE_AWAITER_HELPER), the image's copy, or this
    checkout's build."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    candidates = [given] if given is not None else []
    candidates += [IN_IMAGE, REPO_BUILD / f"noop-{arch}", REPO_BUILD / "noop"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UsageError(
        "the static no-op helper was not found",
        hint="run inside the image-awaiter image, build it with `make helper`, "
        "or set IMAGE_AWAITER_HELPER",
    )


def install_helper(dest: Path, *, helper: Path | None = None) -> None:
    """Copy the helper (`helper`, or the first one found) to `dest` with mode 0755."""
    source = find_helper(helper)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        dest.chmod(0o755)
    except OSError as error:
        raise UsageError(
            f"cannot install the helper to {dest}: {error.strerror}", hint="choose a writable DEST"
        ) from None
