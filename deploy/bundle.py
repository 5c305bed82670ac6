"""Offline packaging helpers for ``make package``.

``stage``: copy what Chalice deploys (app.py, chalicelib/, requirements.txt, the stage config, the merge
template and the bot's policy) into a clean directory, so that packaging never reuses a cached
``.chalice/deployments`` zip built from older dependencies and never ships ``__pycache__``.

``wheelhouse``: rebuild a wheel for every runtime dependency from the distribution installed in this
virtualenv, so that ``chalice package`` can run ``pip download`` with ``--no-index --find-links`` and
never needs a package index. The wheels hold exactly the files pip installed (each one checked against
the installed RECORD hash), so the Lambda ships the versions the tests ran against. Only pure-Python
distributions qualify: a compiled one built for this machine might not run on Lambda, and is refused.

``runtime``: find the interpreter of the Lambda runtime (``python3.13`` on the PATH, else pyenv's copy), so that
``make package`` fails at once, in one line, when the bytecode cannot be built for the runtime.

``finalize``: turn what ``chalice package`` wrote into what is deployed. Chalice takes the runtime from the
interpreter it runs under; this pins the template's ``Runtime`` instead, checks that the dependencies resolve
the same for that Python, replaces the static own-roles deny of the policy file (it names the role names
``chalice deploy`` creates) by the stack's own role ARNs, and adds bytecode to ``deployment.zip``: compiled by the
runtime's own interpreter, hash-based (``unchecked-hash``), so the fixed dates Chalice gives the zipped sources
never make Python recompile them at a cold start (``/var/task`` is read-only, so nothing would be cached).

``report``: check that every wheel of the wheelhouse landed in the deployment package (Chalice only warns
when a dependency is missing) and print the size of each zip against Lambda's limits.

Development only: run with the project's virtualenv, ``.venv/bin/python deploy/bundle.py --help``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
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
# The Lambda runtimes the package may be built for: 3.11's support window is closing.
SUPPORTED_RUNTIMES = ("python3.12", "python3.13")
# Where Lambda unpacks the function: the path the compiled bytecode names its sources by.
LAMBDA_TASK_ROOT = "/var/task"
# The policy file's statement that names the roles `chalice deploy` creates; the stack states its own.
OWN_ROLES_SID = "NeverTouchOwnRoles"


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


def runtime_closure(requirements: Iterable[Requirement], python: str | None = None) -> list[metadata.Distribution]:
    """The installed distributions the requirements need, transitively, for ``python`` ("3.13"; default: this one)."""
    environment: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    if python is not None:
        environment.update(python_version=python, python_full_version=f"{python}.0")
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = [r for r in requirements if r.marker is None or r.marker.evaluate({**environment, "extra": ""})]
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
            if child.marker is None or any(child.marker.evaluate({**environment, "extra": e}) for e in wanted):
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


# --- the runtime, the template, the bytecode ------------------------------------------------------------


def runtime_version(runtime: str) -> str:
    """ "3.13" for "python3.13"; BundleError for a runtime the package is not built for."""
    if runtime not in SUPPORTED_RUNTIMES:
        raise BundleError(f"runtime {runtime!r} is not supported: choose one of {', '.join(SUPPORTED_RUNTIMES)}")
    return runtime.removeprefix("python")


def _interpreter_version(command: str) -> tuple[str, str] | str:
    """(version "3.13", absolute path) of an interpreter, or why it could not be run."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    try:
        # The deployer's own interpreter, named on the command line or in the Makefile.
        done = subprocess.run([command, "-c", probe], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run it ({type(exc).__name__})"
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        return "it does not run"
    return lines[0], lines[1]


def find_python(runtime: str, command: str | None = None) -> Path:
    """The interpreter of the Lambda runtime: ``command`` (default: ``python3.13`` for python3.13), else pyenv's."""
    want = runtime_version(runtime)
    command = command or runtime
    candidates = [command]
    if "/" not in command:  # a bare name: pyenv installs versions without putting them on the PATH
        root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        candidates += [str(p) for p in sorted(root.glob(f"versions/{want}.*/bin/{command}"), reverse=True)]
    first_problem = ""
    for candidate in candidates:
        found = _interpreter_version(candidate)
        if isinstance(found, tuple) and found[0] == want:
            return Path(found[1])
        problem = found if isinstance(found, str) else f"it is Python {found[0]}"
        first_problem = first_problem or f"`{candidate}`: {problem}"
    raise BundleError(
        f"no Python {want} interpreter to compile the {runtime} package ({first_problem}): install Python {want}, "
        f"or pass PYTHON_RUNTIME=/path/to/python{want}"
    )


def same_closure_for(requirements_file: Path, python: str) -> list[str]:
    """The dependencies as resolved for ``python``; BundleError if they differ from this interpreter's."""
    requirements = read_requirements(requirements_file)
    here = {(canonicalize_name(str(d.metadata["Name"])), d.version) for d in runtime_closure(requirements)}
    there = {(canonicalize_name(str(d.metadata["Name"])), d.version) for d in runtime_closure(requirements, python)}
    if here != there:
        extra, missing = sorted(there - here), sorted(here - there)
        raise BundleError(
            f"the dependencies differ on Python {python}: it needs {extra or 'nothing more'} and not {missing or '-'}; "
            f"build the virtualenv with Python {python}"
        )
    return sorted(f"{name} {version}" for name, version in there)


def _roles_attached_to_own_roles_deny(resources: Mapping[str, Any]) -> set[str]:
    """Roles the template's separate own-roles deny covers, by their own ARNs (see .chalice/resources.json)."""
    covered: set[str] = set()
    for resource in resources.values():
        if resource.get("Type") != "AWS::IAM::Policy":
            continue
        properties = resource.get("Properties", {})
        attached = {str(r["Ref"]) for r in properties.get("Roles", []) if isinstance(r, dict) and "Ref" in r}
        for statement in properties.get("PolicyDocument", {}).get("Statement", []):
            if statement.get("Sid") != OWN_ROLES_SID or statement.get("Effect") != "Deny":
                continue
            arns = statement.get("Resource", [])
            named = {r["Fn::GetAtt"][0] for r in arns if isinstance(r, dict) and "Fn::GetAtt" in r}
            covered |= attached & named
    return covered


def finalize_template(template: dict[str, Any], runtime: str) -> list[str]:
    """Pin every function's runtime; move the own-roles deny onto the stack's role ARNs. Returns what changed."""
    runtime_version(runtime)
    resources: dict[str, Any] = template["Resources"]
    functions = [r for r in resources.values() if r.get("Type") == "AWS::Serverless::Function"]
    if not functions:
        raise BundleError("the template has no AWS::Serverless::Function")
    for function in functions:
        function["Properties"]["Runtime"] = runtime
    roles = {name: r for name, r in resources.items() if r.get("Type") == "AWS::IAM::Role"}
    uncovered = sorted(set(roles) - _roles_attached_to_own_roles_deny(resources))
    if uncovered:
        raise BundleError(
            f"no {OWN_ROLES_SID} deny names the roles {', '.join(uncovered)} by their ARNs: "
            "the merge template must attach one (an AWS::IAM::Policy) before the static one is removed"
        )
    for role in roles.values():
        for policy in role["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            policy["PolicyDocument"]["Statement"] = [s for s in statements if s.get("Sid") != OWN_ROLES_SID]
    return [f"Runtime {runtime} on {len(functions)} functions", f"{OWN_ROLES_SID} names the {len(roles)} stack roles"]


@dataclass(frozen=True)
class Bytecode:
    modules: int
    pyc_bytes: int
    python: Path


def precompile(package: Path, python: Path) -> Bytecode:
    """Add hash-based bytecode, compiled by ``python``, for every module of a deployment zip (rewritten in place)."""
    with tempfile.TemporaryDirectory(prefix="deputy-guard-pyc-") as work:
        root = Path(work) / "task"
        with zipfile.ZipFile(package) as archive:
            entries = [(info, archive.read(info)) for info in archive.infolist()]
        if any(info.filename.endswith(".pyc") for info, _ in entries):
            raise BundleError(f"{package} already holds bytecode")
        for info, data in entries:
            target = root / info.filename
            if info.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        command = [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
        command += ["-s", str(root), "-p", LAMBDA_TASK_ROOT, str(root)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BundleError(f"{python} could not compile the package: {(done.stdout + done.stderr).strip()[-500:]}")
        compiled = sorted(p for p in root.rglob("*.pyc"))
        staged = Path(work) / package.name
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for info, data in entries:
                archive.writestr(info, data)
            for path in compiled:
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
        shutil.move(str(staged), package)
        return Bytecode(len(compiled), sum(p.stat().st_size for p in compiled), python)


def finalize(
    out_dir: Path, runtime: str, requirements_file: Path, python_command: str | None, *, bytecode: bool = True
) -> list[str]:
    """Pin the runtime in ``out_dir``/sam.json and add its bytecode to ``out_dir``/deployment.zip."""
    python = find_python(runtime, python_command) if bytecode else None
    same_closure_for(requirements_file, runtime_version(runtime))
    template_path = out_dir / "sam.json"
    template = json.loads(template_path.read_text(encoding="utf-8"))
    lines = finalize_template(template, runtime)
    template_path.write_text(json.dumps(template, indent=2, separators=(",", ": ")) + "\n", encoding="utf-8")
    lines.append(f"dependencies resolve the same on {runtime}")
    if python is None:
        lines.append("no bytecode (PRECOMPILE=no): every cold start compiles the package's modules")
    else:
        compiled = precompile(out_dir / "deployment.zip", python)
        lines.append(
            f"bytecode: {compiled.modules} modules compiled by {compiled.python} (unchecked-hash), "
            f"{_mib(compiled.pyc_bytes)} unzipped"
        )
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
    runtime = commands.add_parser("runtime", help="find the interpreter of the Lambda runtime, or fail in one line")
    runtime.add_argument("--runtime", required=True, help="python3.12 or python3.13")
    runtime.add_argument("--python", help="the interpreter's command or path (default: the runtime's name)")
    runtime.add_argument("--no-bytecode", action="store_true", help="only check the runtime's name")
    final = commands.add_parser("finalize", help="pin the runtime and add its bytecode to chalice package's output")
    final.add_argument("directory", type=Path)
    final.add_argument("--runtime", required=True, help="python3.12 or python3.13")
    final.add_argument("--python", help="the interpreter's command or path (default: the runtime's name)")
    final.add_argument("--requirements", type=Path, default=Path("requirements.txt"))
    final.add_argument("--no-bytecode", action="store_true", help="ship no bytecode (slower cold starts)")
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
        elif args.command == "runtime":
            if args.no_bytecode:
                print(f"runtime {args.runtime}, Python {runtime_version(args.runtime)} (no bytecode)")
            else:
                print(f"runtime {args.runtime}: {find_python(args.runtime, args.python)}")
        elif args.command == "finalize":
            bytecode = not args.no_bytecode
            print("\n".join(finalize(args.directory, args.runtime, args.requirements, args.python, bytecode=bytecode)))
        else:
            print("\n".join(report(args.directory, args.wheelhouse)))
    except (BundleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
