"""Render requirements.txt (what Chalice installs into the Lambda) from pyproject's runtime dependencies.

Run from the project root: ``python -m deputy_guard.requirements > requirements.txt`` (``make requirements``),
or ``python -m deputy_guard.requirements --check`` to fail when requirements.txt has drifted.

Chalice itself is left out: ``chalice package``/``chalice deploy`` bundle its runtime (``chalice/app.py``)
into every deployment package, and the rest of the Chalice distribution is a CLI the Lambda never runs.
Development only: the Lambda never imports this module.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT_DIR / "pyproject.toml"
REQUIREMENTS = PROJECT_DIR / "requirements.txt"
BUNDLED_BY_CHALICE = frozenset({"chalice"})
HEADER = (
    "# Generated from pyproject.toml [project].dependencies by `make requirements`; do not edit.",
    "# chalice is left out: Chalice bundles its own runtime into the deployment package.",
)
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


class RequirementsError(ValueError):
    """pyproject.toml does not declare runtime dependencies in a form this module understands."""


def normalize_name(name: str) -> str:
    """The PEP 503 normal form of a distribution name (``Aws_Lambda.Powertools`` -> ``aws-lambda-powertools``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The normalised distribution name at the start of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if match is None:
        raise RequirementsError(f"not a PEP 508 requirement: {requirement!r}")
    return normalize_name(match.group(1))


def runtime_requirements(pyproject: Mapping[str, Any]) -> list[str]:
    """``[project].dependencies`` in declared order, minus what Chalice bundles itself."""
    project = pyproject.get("project")
    dependencies = project.get("dependencies") if isinstance(project, Mapping) else None
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise RequirementsError("pyproject.toml has no [project].dependencies list of strings")
    return [d.strip() for d in dependencies if requirement_name(d) not in BUNDLED_BY_CHALICE]


def render(requirements: Iterable[str]) -> str:
    """The text of requirements.txt: a header, then one requirement per line."""
    return "\n".join([*HEADER, *requirements]) + "\n"


def render_from(pyproject_path: Path = PYPROJECT) -> str:
    """The requirements.txt that the given pyproject.toml implies."""
    with pyproject_path.open("rb") as handle:
        return render(runtime_requirements(tomllib.load(handle)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deputy_guard.requirements", description="Render requirements.txt from pyproject.toml."
    )
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT, help="the pyproject.toml to read")
    parser.add_argument(
        "--check",
        type=Path,
        nargs="?",
        const=REQUIREMENTS,
        metavar="FILE",
        help="compare with FILE (default requirements.txt) instead of printing; exit 1 if it differs",
    )
    args = parser.parse_args(argv)
    try:
        expected = render_from(args.pyproject)
    except (OSError, tomllib.TOMLDecodeError, RequirementsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check is None:
        sys.stdout.write(expected)
        return 0
    try:
        actual = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if actual != expected:
        print(f"{args.check} is out of date with {args.pyproject}: run `make requirements`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
