"""The release's one version: `__version__` in image_awaiter/__init__.py. The chart's `version`
and `appVersion` must equal it (the image tag and the `--helper-image` default are made from it),
and so must the pushed tag, `v<version>`. The release workflow runs this before building
anything; it prints `version=<version>` for `$GITHUB_OUTPUT`.

Usage: python scripts/release_version.py [--tag v0.1.0]
Exit 0 when everything agrees; else exit 1 with one line per disagreement on stderr.
Reads the files as text: it runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_version(root: Path = ROOT) -> str:
    text = (root / "image_awaiter" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit("release_version: no __version__ in image_awaiter/__init__.py")
    return found.group(1)


def chart_field(name: str, root: Path = ROOT) -> str | None:
    text = (root / "chart" / "Chart.yaml").read_text(encoding="utf-8")
    found = re.search(rf'^{name}:\s*"?([^"\s]+)"?\s*$', text, re.MULTILINE)
    return found.group(1) if found else None


def disagreements(tag: str | None, root: Path = ROOT) -> tuple[str, list[str]]:
    version = package_version(root)
    problems = [
        f"chart/Chart.yaml {name} is {found!r}, not {version!r} (image_awaiter/__init__.py)"
        for name in ("version", "appVersion")
        if (found := chart_field(name, root)) != version
    ]
    if tag is not None and tag != f"v{version}":
        problems.append(
            f"tag {tag!r} does not match the package's version: tag v{version}, or change "
            "__version__ in image_awaiter/__init__.py and chart/Chart.yaml together"
        )
    return version, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release_version.py")
    parser.add_argument("--tag", help="the git tag being released, e.g. v0.1.0")
    args = parser.parse_args(argv)
    version, problems = disagreements(args.tag)
    for problem in problems:
        print(f"release_version: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"version={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
