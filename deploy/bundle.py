"""Offline packaging helpers for ``make package``.

``stage``: copy what Chalice deploys (app.py, chalicelib/, requirements.txt, the stage config, the merge
template and the bot's policy) into a clean directory, so that packaging never reuses a cached
``.chalice/deployments`` zip built from older dependencies and never ships ``__pycache__``.

``wheelhouse``: rebuild a wheel for every runtime dependency from the distribution installed in this
virtualenv, so that ``chalice package`` can run ``pip download`` with ``--no-index --find-links`` and
never needs a package index. The wheels hold exactly the files pip installed (each one checked against
the installed RECORD hash), so the Lambda ships the versions the tests ran against. Only pure-Python
distributions qualify: a compiled one built for this machine might not run on Lambda, and is refused.

``report``: check that every wheel of the wheelhouse landed in the deployment package (Chalice only warns
when a dependency is missing) and print the size of each zip against Lambda's limits.

Development only: run with the project's virtualenv, ``.venv/bin/python deploy/bundle.py --help``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Lambda's documented limits for a deployment package uploaded to it (zipped) and unpacked (all layers).
LAMBDA_ZIPPED_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Files an installer writes into .dist-info that are not part of the wheel.
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"})
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: wheels are byte-for-byte reproducible
# What `chalice package` reads from the project (vendor/ only if present; Chalice bundles it as is).
DEPLOYABLE = (
    "app.py",
    "requirements.txt",
    "chalicelib",
    "policies",
    ".chalice/config.json",
    ".chalice/resources.json",
    "vendor",
)
_OPTIONAL = frozenset({"vendor"})


class BundleError(RuntimeError):
    """Packaging cannot go on; the message says what is wrong and with which file or distribution."""


@dataclass(frozen=True)
class WheelFile:
    name: str
    version: str
    path: Path


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements listed in a requirements.txt (comments and blank lines skipped; no pip options)."""
    requirements = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise BundleError(f"{path}:{number}: pip options are not supported here: {line!r}")
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            raise BundleError(f"{path}:{number}: {exc}") from exc
    return requirements


def runtime_closure(requirements: Iterable[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions the requirements need, transitively, for this interpreter."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        key = canonicalize_name(requirement.name)
        try:
            dist = found.get(key) or metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise BundleError(f"{requirement.name} is required but not installed in {sys.prefix}") from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise BundleError(f"{requirement.name} {dist.version} is installed but {requirement} is required")
        new_extras = set(requirement.extras) - extras_seen.get(key, set())
        if key in found and not new_extras:
            continue
        found[key] = dist
        extras_seen.setdefault(key, set()).update(requirement.extras)
        for text in dist.requires or []:
            child = Requirement(text)
            wanted = {""} | extras_seen[key]
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in wanted):
                pending.append(child)
    return [found[key] for key in sorted(found)]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _wheel_tags(dist: metadata.Distribution) -> str:
    """The compressed tag set (``py2.py3-none-any``) of a pure-Python distribution, else BundleError."""
    wheel = dist.read_text("WHEEL")
    if wheel is None:
        raise BundleError(f"{dist.metadata['Name']} was not installed from a wheel (no WHEEL file)")
    fields = [line.split(":", 1) for line in wheel.splitlines() if ":" in line]
    purelib = any(k.strip() == "Root-Is-Purelib" and v.strip().lower() == "true" for k, v in fields)
    tags = [v.strip() for k, v in fields if k.strip() == "Tag"]
    if not purelib or not tags or any(not tag.endswith("-none-any") for tag in tags):
        raise BundleError(
            f"{dist.metadata['Name']} {dist.version} is not pure Python (tags {', '.join(tags) or 'none'}); "
            "a build for this machine may not run on Lambda"
        )
    pythons = sorted({tag.split("-")[0] for tag in tags})
    return f"{'.'.join(pythons)}-none-any"


def _payload(dist: metadata.Distribution) -> Iterator[tuple[str, bytes]]:
    """(archive path, bytes) for every file pip installed, except caches, scripts and installer records."""
    files = dist.files
    if not files:
        raise BundleError(f"{dist.metadata['Name']} has no RECORD: cannot tell which files belong to it")
    for entry in sorted(files, key=str):
        name = entry.as_posix()
        parts = entry.parts
        if parts[0] == ".." or "__pycache__" in parts or name.endswith(".pyc"):
            continue  # scripts and data outside site-packages are not needed on Lambda; bytecode is rebuilt
        if parts[0].endswith(".dist-info") and len(parts) == 2 and parts[1] in _INSTALLER_FILES:
            continue
        data = Path(str(entry.locate())).read_bytes()
        if entry.hash is not None and _record_hash(data) != f"{entry.hash.mode}={entry.hash.value}":
            raise BundleError(f"{name} differs from what pip installed; reinstall {dist.metadata['Name']}")
        yield name, data


def build_wheel(dist: metadata.Distribution, out_dir: Path) -> WheelFile:
    """Pack an installed pure-Python distribution back into a wheel in ``out_dir``."""
    name = str(dist.metadata["Name"])
    tags = _wheel_tags(dist)
    escaped = canonicalize_name(name).replace("-", "_")
    target = out_dir / f"{escaped}-{dist.version}-{tags}.whl"
    record_lines = []
    dist_info = None
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in _payload(dist):
            if dist_info is None and path.split("/", 1)[0].endswith(".dist-info"):
                dist_info = path.split("/", 1)[0]
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            record_lines.append(f"{path},{_record_hash(data)},{len(data)}")
        if dist_info is None:
            raise BundleError(f"{name}: no .dist-info directory among its installed files")
        record_lines.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, "\n".join(record_lines) + "\n")
    return WheelFile(name=name, version=dist.version, path=target)


def build_wheelhouse(requirements_file: Path, out_dir: Path) -> list[WheelFile]:
    """Replace ``out_dir``'s wheels with one per distribution the requirements need."""
    closure = runtime_closure(read_requirements(requirements_file))
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.whl"):
        stale.unlink()  # an older wheel left here could satisfy pip instead of the installed version
    return [build_wheel(dist, out_dir) for dist in closure]


def stage_project(project_dir: Path, out_dir: Path) -> list[str]:
    """Copy the deployable files of ``project_dir`` into a fresh ``out_dir``; returns what was copied."""
    project, out = project_dir.resolve(), out_dir.resolve()
    if out == project or out in project.parents:
        raise BundleError(f"refusing to replace {out_dir}: it holds the project")
    shutil.rmtree(out_dir, ignore_errors=True)
    copied = []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for relative in DEPLOYABLE:
        source = project_dir / relative
        target = out_dir / relative
        if not source.exists():
            if relative in _OPTIONAL:
                continue
            raise BundleError(f"{source} is missing")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
        copied.append(relative)
    return copied


def missing_from_package(package: Path, wheelhouse: Path) -> list[str]:
    """The wheels of ``wheelhouse`` whose .dist-info is not in the deployment package."""
    with zipfile.ZipFile(package) as archive:
        top_level = {name.split("/", 1)[0] for name in archive.namelist()}
    missing = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            dist_infos = {n.split("/", 1)[0] for n in archive.namelist() if n.split("/", 1)[0].endswith(".dist-info")}
        if not dist_infos <= top_level:
            missing.append(wheel.name)
    return missing


@dataclass(frozen=True)
class ZipSize:
    path: Path
    zipped: int
    unzipped: int
    files: int


def measure(path: Path) -> ZipSize:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    return ZipSize(path, path.stat().st_size, sum(i.file_size for i in infos), len(infos))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def report(out_dir: Path, wheelhouse: Path | None = None) -> list[str]:
    """One line per zip in ``out_dir``: zipped and unzipped size, with Lambda's limits."""
    lines = []
    zips = sorted(out_dir.glob("*.zip"))
    if not zips:
        raise BundleError(f"no .zip in {out_dir}")
    if wheelhouse is not None:
        missing = missing_from_package(out_dir / "deployment.zip", wheelhouse)
        if missing:
            raise BundleError(f"deployment.zip lacks dependencies: {', '.join(missing)}")
    total_unzipped = 0
    for size in map(measure, zips):
        total_unzipped += size.unzipped
        lines.append(
            f"{size.path.name}: {_mib(size.zipped)} zipped (limit {_mib(LAMBDA_ZIPPED_LIMIT)}), "
            f"{_mib(size.unzipped)} unzipped, {size.files} files"
        )
    lines.append(f"total unzipped: {_mib(total_unzipped)} (limit {_mib(LAMBDA_UNZIPPED_LIMIT)})")
    if total_unzipped > LAMBDA_UNZIPPED_LIMIT or any(measure(z).zipped > LAMBDA_ZIPPED_LIMIT for z in zips):
        raise BundleError("\n".join([*lines, "the package exceeds Lambda's limits"]))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/bundle.py", description="Offline packaging helpers.")
    commands = parser.add_subparsers(dest="command", required=True)
    wheelhouse = commands.add_parser("wheelhouse", help="rebuild wheels of the runtime dependencies")
    wheelhouse.add_argument("--requirements", type=Path, default=Path("requirements.txt"))
    wheelhouse.add_argument("--out", type=Path, required=True)
    stage = commands.add_parser("stage", help="copy the deployable files into a clean directory")
    stage.add_argument("--project", type=Path, default=Path())
    stage.add_argument("--out", type=Path, required=True)
    sizes = commands.add_parser("report", help="check the package and print the sizes of its zips")
    sizes.add_argument("directory", type=Path)
    sizes.add_argument("--wheelhouse", type=Path, help="fail if a wheel from here is missing from deployment.zip")
    args = parser.parse_args(argv)
    try:
        if args.command == "wheelhouse":
            wheels = build_wheelhouse(args.requirements, args.out)
            print(f"wheelhouse {args.out}: " + ", ".join(f"{w.name} {w.version}" for w in wheels))
        elif args.command == "stage":
            copied = stage_project(args.project, args.out)
            print(f"staged {', '.join(copied)} in {args.out}")
        else:
            print("\n".join(report(args.directory, args.wheelhouse)))
    except (BundleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
