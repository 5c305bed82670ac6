"""Cold start: import time of ``app`` beside ``import boto3``, what the first event costs, and the package size.

Run: .venv/bin/python bench/bench_coldstart.py [--runs 15] [--event-runs 5] [--json]

1. ``python -X importtime -c "import app"`` (and ``import boto3``) in ``--runs`` fresh interpreters from the
   project root: the cumulative time of the top-level import, median. Also the wall time of
   ``python -c "import app"`` minus ``python -c "pass"``, as a cross-check.
2. The first event of a fresh interpreter through the real Chalice handler (``app.on_iam_event``): an
   irrelevant one (no AWS call needed) and a compliant role (GetRole, against moto's server on loopback),
   from the development virtualenv and from the deployment package as Lambda runs it, with the runtime's
   Python (python3.13, from the PATH or pyenv) and nothing written back (/var/task is read-only): without
   bytecode (before), with ordinary timestamp bytecode whose source dates are the zip's (what compiling
   before Chalice zips would give), and as ``make package`` builds it, with hash-based bytecode (after).
3. The deployment package built by ``make package`` (into a temporary directory), with and without its
   bytecode, or, if packaging is not available, the zip of app.py + chalicelib and the installed size of
   requirements.txt.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    FAKE_AWS_ENV,
    LOOPBACK,
    ROOT,
    LatencyAws,
    compliant_trust,
    machine,
    use_fake_aws,
    versions,
)

TARGET_RATIO = 1.3
TABLE = "deputy-guard-bench"
PYTHON = sys.executable
RUNTIME = "python3.13"  # the Makefile's LAMBDA_RUNTIME
ZIP_EPOCH = 315532800  # 1980-01-01: the date Chalice gives every file of the zip
WATCHED = {
    "boto3": "boto3",
    "botocore (clients)": "botocore.client",
    "Powertools (any)": "aws_lambda_powertools",
    "Powertools Logger": "aws_lambda_powertools.logging",
    "Powertools Metrics": "aws_lambda_powertools.metrics",
    "Powertools Tracer": "aws_lambda_powertools.tracing",
    "X-Ray SDK (Tracer's backend)": "aws_xray_sdk",
    "Powertools Parameters": "aws_lambda_powertools.utilities.parameters",
    "Powertools Idempotency": "aws_lambda_powertools.utilities.idempotency",
}

# Runs in a fresh interpreter: import app, send the events of $BENCH_EVENTS through the real handler.
CHILD = r"""
import os, sys, time
if os.environ.get("BENCH_PACKAGE"):
    sys.path.insert(0, os.environ["BENCH_PACKAGE"])
WATCHED = %(watched)r
def loaded():
    return {label: name in sys.modules for label, name in WATCHED.items()}
start = time.perf_counter()
import app
imported = time.perf_counter()
import json
class Context:
    aws_request_id = "bench-request"
    function_name = "deputy-guard-prod-on_iam_event"
    def get_remaining_time_in_millis(self):
        return 60000
modules = {"after import": loaded()}
calls, results = [], []
for index, path in enumerate(os.environ["BENCH_EVENTS"].split(os.pathsep)):
    with open(path) as handle:
        event = json.load(handle)
    import uuid
    event["id"] = event["detail"]["eventID"] = str(uuid.uuid4())  # a new event for the idempotency guard
    sys.stderr.write("BENCH_MARK event %%d\n" %% (index + 1))
    sys.stderr.flush()
    began = time.perf_counter()
    result = app.on_iam_event(event, Context())
    calls.append((time.perf_counter() - began) * 1000)
    results.append(result)
    modules[f"after event {index + 1}"] = loaded()
sys.stdout.flush()
sys.__stdout__.write("BENCH_RESULT " + json.dumps({
    "import_ms": (imported - start) * 1000, "calls_ms": calls, "results": results, "modules": modules,
    "app_file": app.__file__}) + "\n")
"""


def child_env(endpoint: str, *, no_bytecode: bool) -> dict[str, str]:
    """What the function's environment holds (stage variables), with fake credentials and a loopback endpoint."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(FAKE_AWS_ENV)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": "deputy-guard-prod-on_iam_event",
            "POWERTOOLS_SERVICE_NAME": "deputy-guard",
            "POWERTOOLS_METRICS_NAMESPACE": "DeputyGuard",
            "DEPUTY_GUARD_MODE": "notify",
            "DEPUTY_GUARD_TABLE": TABLE,
            "LOG_LEVEL": "INFO",
        }
    )
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --- 1. import time ---------------------------------------------------------------------------------


def parse_importtime(stderr: str) -> list[tuple[int, str, int, int]]:
    """(level, module, self µs, cumulative µs) per line of ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        stripped = name.lstrip(" ")
        level = (len(name) - len(stripped) - 1) // 2
        rows.append((level, stripped.strip(), int(self_us), int(cumulative_us)))
    return rows


def importtime(module: str, env: dict[str, str]) -> tuple[float, list[tuple[int, str, int, int]]]:
    """Cumulative ms of the top-level ``import module`` in a fresh interpreter, and every import it made."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = parse_importtime(done.stderr)
    top = [cumulative for level, name, _self, cumulative in rows if level == 0 and name == module]
    return top[-1] / 1000, rows


def wall(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True)
    return (time.perf_counter() - start) * 1000


def measure_imports(runs: int, env: dict[str, str], say: Callable[[str], None]) -> dict[str, Any]:
    say(f"  import app / import boto3, {runs} fresh interpreters each ...")
    wall("import app, boto3", env)  # bytecode caches written, disk caches warm
    app_ms, boto3_ms, app_wall, boto3_wall, pass_wall = [], [], [], [], []
    self_us: dict[str, list[int]] = defaultdict(list)
    cumulative_us: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        total, rows = importtime("app", env)
        app_ms.append(total)
        for _level, name, own, cumulative in rows:
            self_us[name].append(own)
            cumulative_us[name].append(cumulative)
        boto3_ms.append(importtime("boto3", env)[0])
        pass_wall.append(wall("pass", env))
        app_wall.append(wall("import app", env))
        boto3_wall.append(wall("import boto3", env))
    heaviest = sorted(self_us, key=lambda name: statistics.median(self_us[name]), reverse=True)[:10]
    app_median, boto3_median = statistics.median(app_ms), statistics.median(boto3_ms)
    base = statistics.median(pass_wall)
    app_wall_net, boto3_wall_net = statistics.median(app_wall) - base, statistics.median(boto3_wall) - base
    return {
        "runs": runs,
        "method": "-X importtime, cumulative time of the top-level import, median",
        "app_ms": round(app_median, 2),
        "boto3_ms": round(boto3_median, 2),
        "ratio": round(app_median / boto3_median, 3),
        "met": app_median / boto3_median <= TARGET_RATIO,
        "wall": {
            "method": "wall time of python -c 'import X' minus python -c 'pass', medians",
            "pass_ms": round(base, 1),
            "app_ms": round(app_wall_net, 1),
            "boto3_ms": round(boto3_wall_net, 1),
            "ratio": round(app_wall_net / boto3_wall_net, 3) if boto3_wall_net > 0 else None,
        },
        "heaviest": [
            {
                "module": name,
                "self_ms": round(statistics.median(self_us[name]) / 1000, 2),
                "cumulative_ms": round(statistics.median(cumulative_us[name]) / 1000, 2),
            }
            for name in heaviest
        ],
    }


# --- 2. first event ---------------------------------------------------------------------------------


def lazy_imports(
    events: list[Path], env: dict[str, str], cwd: Path, *, package: Path | None = None, python: str = PYTHON
) -> list[list[dict[str, Any]]]:
    """For each event, the top-level imports it triggered (deferred imports run at the first call), by cost."""
    env = {**env, "BENCH_EVENTS": os.pathsep.join(str(p) for p in events)}
    command = [python, "-X", "importtime", "-c", CHILD % {"watched": WATCHED}]
    if package is not None:
        env["BENCH_PACKAGE"] = str(package)
        command.insert(1, "-S")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True)
    segments: list[list[dict[str, Any]]] = []
    for part in done.stderr.split("BENCH_MARK event ")[1:]:
        rows = [(name, cumulative) for level, name, _own, cumulative in parse_importtime(part) if level == 0]
        rows.sort(key=lambda row: row[1], reverse=True)
        segments.append([{"module": name, "cumulative_ms": round(us / 1000, 1)} for name, us in rows])
    return segments


def first_events(
    label: str,
    events: list[Path],
    env: dict[str, str],
    runs: int,
    server: LatencyAws,
    *,
    package: Path | None,
    cwd: Path,
    python: str = PYTHON,
) -> dict[str, Any]:
    """Fresh interpreters that import app and handle ``events`` in order; medians per step."""
    env = {**env, "BENCH_EVENTS": os.pathsep.join(str(p) for p in events)}
    command = [python, "-c", CHILD % {"watched": WATCHED}]
    if package is not None:
        env["BENCH_PACKAGE"] = str(package)
        command.insert(1, "-S")  # only the package and the standard library, as on Lambda
    samples: list[dict[str, Any]] = []
    requests: list[dict[str, int]] = []
    skip_lines: list[int] = []
    for _ in range(runs):
        server.reset_requests()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"{label}: child failed ({done.returncode}): {done.stderr[-2000:]}")
        samples.append(json.loads(line.split(" ", 1)[1]))
        requests.append(server.requests())
        skip_lines.append(sum("event skipped" in x for x in done.stdout.splitlines()))
    first = samples[0]
    return {
        "label": label,
        "runs": runs,
        "import_ms": round(statistics.median(s["import_ms"] for s in samples), 1),
        "calls_ms": [round(statistics.median(s["calls_ms"][i] for s in samples), 1) for i in range(len(events))],
        "results": [{k: r.get(k) for k in ("status", "reason", "verdict", "action")} for r in first["results"]],
        "modules": first["modules"],
        "aws_requests": requests[0],
        "log_lines_per_skip": skip_lines[0],
        "app_file": first["app_file"],
        "python": python,
        "python_version": python_version(python),
    }


# --- 3. the deployment package ----------------------------------------------------------------------


@functools.cache
def python_version(python: str) -> str:
    done = subprocess.run([python, "-c", "import platform; print(platform.python_version())"], capture_output=True)
    return done.stdout.decode().strip() or "?"


def runtime_python() -> str | None:
    """The runtime's interpreter as `make package` finds it (deploy/bundle.py), or None."""
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        bundle = importlib.import_module("bundle")  # deploy/bundle.py, not a package

        return str(bundle.find_python(RUNTIME))
    except bundle.BundleError:
        return None
    finally:
        sys.path.remove(str(ROOT / "deploy"))


def build_package(work: Path, say: Callable[[str], None], python: str | None) -> tuple[Path | None, str]:
    """`make package` into ``work`` (never the project's dist/ or build/), offline: (deployment.zip, note)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8") if (ROOT / "Makefile").exists() else ""
    if "\npackage:" not in makefile or not (ROOT / ".chalice" / "config.json").exists():
        return None, "no `make package` target or .chalice/config.json"
    say("  make package (offline) ...")
    dist, build = work / "dist", work / "build"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIP_", "MAKE", "MFLAGS"))}
    command = ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.deputy-guard-installed", "package"]
    command += [f"DIST={dist}", f"BUILD={build}", f"BIN={Path(PYTHON).parent}"]
    command.append(f"PYTHON_RUNTIME={python}" if python else "PRECOMPILE=no")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        return None, f"`make package` failed: {(done.stdout + done.stderr).strip()[-300:]}"
    how = "with hash-based bytecode" if python else "with PRECOMPILE=no (no runtime interpreter here)"
    return dist / "deployment.zip", f"`make package` ({RUNTIME}, {how}, in a temporary directory)"


def package_variants(deployment: Path, work: Path, python: str) -> list[tuple[str, Path]]:
    """The package unzipped three ways: no bytecode, timestamp bytecode that misses, hash-based bytecode."""
    variants = []
    for key in ("none", "timestamp", "built"):
        target = work / f"package-{key}"
        with zipfile.ZipFile(deployment) as archive:
            archive.extractall(target)
        if key != "built":
            for cache in sorted(target.rglob("__pycache__"), reverse=True):
                shutil.rmtree(cache)
        if key == "timestamp":
            # Compiled from sources dated now, then zipped with Chalice's fixed dates: the stamps no longer match.
            for source in target.rglob("*.py"):
                os.utime(source)
            subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(target)], check=True, timeout=600)
        for source in target.rglob("*.py"):
            os.utime(source, (ZIP_EPOCH, ZIP_EPOCH))  # as Lambda unzips the package
        variants.append((key, target))
    labels = {
        "none": "deployment package, no bytecode (before: as Chalice ships it)",
        "timestamp": "deployment package, timestamp bytecode, zip dates (recompiled every time)",
        "built": "deployment package, hash-based bytecode (after: as `make package` builds it)",
    }
    return [(labels[key], path) for key, path in variants]


def package_sizes(deployment: Path) -> dict[str, Any]:
    with zipfile.ZipFile(deployment) as archive:
        infos = archive.infolist()
    by_top: dict[str, int] = defaultdict(int)
    for info in infos:
        top = info.filename.split("/", 1)[0]
        if top.endswith(".dist-info"):
            top = top.split("-", 1)[0] + " (dist-info)"
        by_top[top] += info.file_size
    layers = sorted(p.name for p in deployment.parent.glob("*.zip") if p != deployment)
    sdk = sum(by_top.get(name, 0) for name in ("boto3", "botocore", "s3transfer"))
    return {
        "zipped_bytes": deployment.stat().st_size,
        "unzipped_bytes": sum(i.file_size for i in infos),
        "files": len(infos),
        "pyc_files": sum(i.filename.endswith(".pyc") for i in infos),
        "pyc_bytes": sum(i.file_size for i in infos if i.filename.endswith(".pyc")),
        "pyc_zipped_bytes": sum(i.compress_size for i in infos if i.filename.endswith(".pyc")),
        "app_code_bytes": by_top.get("app.py", 0) + by_top.get("chalicelib", 0),
        "sdk_bytes": sdk,
        "largest": sorted(by_top.items(), key=lambda item: item[1], reverse=True)[:6],
        "layers": {name: (deployment.parent / name).stat().st_size for name in layers},
    }


def fallback_sizes() -> dict[str, Any]:
    """Without packaging: the zip of app.py + chalicelib, and the installed size of requirements.txt's closure."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(ROOT / "app.py", "app.py")
        for path in sorted((ROOT / "chalicelib").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(ROOT).as_posix())
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        bundle = importlib.import_module("bundle")  # deploy/bundle.py, not a package

        closure = bundle.runtime_closure(bundle.read_requirements(ROOT / "requirements.txt"))
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    installed = {
        str(dist.metadata["Name"]): sum(
            Path(str(f.locate())).stat().st_size
            for f in dist.files or []
            if "__pycache__" not in f.parts and Path(str(f.locate())).is_file()
        )
        for dist in closure
    }
    return {"app_zip_bytes": len(buffer.getvalue()), "requirements_installed_bytes": installed}


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per import measure (default: 15)")
    parser.add_argument(
        "--event-runs", type=int, default=5, help="fresh interpreters per first-event case (default: 5)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()

    from moto.backends import get_backend
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from deputy_guard.demo_data import cloudtrail_event

    server = LatencyAws(0.0).start()
    work = Path(tempfile.mkdtemp(prefix="deputy-guard-bench-"))
    try:
        account = DEFAULT_ACCOUNT_ID
        compliant = compliant_trust(account)
        get_backend("iam")[account]["global"].create_role("billing-sfn", json.dumps(compliant), "/", None, "", [], None)
        irrelevant = ROOT / "tests" / "fixtures" / "events" / "CreateRole-lambda-irrelevant.json"
        relevant = work / "compliant-event.json"
        # An SSO admin's UpdateAssumeRolePolicy: the handler also resolves its own identity (sts) once.
        relevant.write_text(
            json.dumps(cloudtrail_event(account, "UpdateAssumeRolePolicy", "billing-sfn", "alice", compliant))
        )
        assert server.url.startswith(f"http://{LOOPBACK}:")
        # The table the idempotency guard writes to, as the stack creates it.
        use_fake_aws(server.url)
        from chalicelib.adapters import aws

        aws.reset_clients()
        aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
        dev_env = child_env(server.url, no_bytecode=False)
        imports = measure_imports(args.runs, dev_env, say)

        runtime = runtime_python()
        deployment, note = build_package(work, say, runtime)
        sizes = package_sizes(deployment) if deployment else None
        fallback = None if deployment else fallback_sizes()

        say(f"  first events, {args.event_runs} fresh interpreters per case ...")
        variants: list[tuple[str, Path | None, bool, str]] = [
            ("development virtualenv (bytecode cached)", None, False, PYTHON)
        ]
        if deployment is not None and runtime is not None:
            variants += [(label, path, True, runtime) for label, path in package_variants(deployment, work, runtime)]
        first = []
        for label, package, no_bytecode, python in variants:
            env = child_env(server.url, no_bytecode=no_bytecode)
            cwd = ROOT if package is None else work
            if package is None:
                first_events(label, [irrelevant], env, 1, server, package=None, cwd=cwd)  # warm-up
            first.append(
                {
                    "lazy_imports": lazy_imports([irrelevant, relevant], env, cwd, package=package, python=python),
                    "irrelevant_first": first_events(
                        label,
                        [irrelevant, relevant],
                        env,
                        args.event_runs,
                        server,
                        package=package,
                        cwd=cwd,
                        python=python,
                    ),
                    "relevant_first": first_events(
                        label, [relevant], env, args.event_runs, server, package=package, cwd=cwd, python=python
                    ),
                }
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    output = {
        "machine": machine(),
        "versions": versions("boto3", "botocore", "aws-lambda-powertools", "chalice"),
        "imports": imports,
        "first_events": first,
        "package": {"method": note, "sizes": sizes, "fallback": fallback},
        "target_ratio": TARGET_RATIO,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(render(output))
    return 0 if imports["met"] else 1


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def render(output: dict[str, Any]) -> str:
    """Markdown tables of the run (also used by run_all.py)."""
    imports = output["imports"]
    wall_ = imports["wall"]
    lines = [
        f"Import, median of {imports['runs']} fresh interpreters (`-X importtime`, cumulative time of the "
        f"top-level import; the wall-time cross-check subtracts `python -c pass`, {wall_['pass_ms']:.0f} ms):",
        "",
        "| measure | import app | import boto3 | ratio | target | met |",
        "|---|---:|---:|---:|---:|---|",
        f"| `-X importtime` | {imports['app_ms']:.1f} ms | {imports['boto3_ms']:.1f} ms | {imports['ratio']:.2f}x "
        f"| ≤ {output['target_ratio']}x | {'yes' if imports['met'] else '**no**'} |",
        f"| wall time - `pass` | {wall_['app_ms']:.1f} ms | {wall_['boto3_ms']:.1f} ms "
        f"| {wall_['ratio'] if wall_['ratio'] is not None else 'n/a'}x | | |",
        "",
        "Heaviest modules imported by `import app` (median self time):",
        "",
        "| module | self | cumulative |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{h['module']}` | {h['self_ms']:.2f} ms | {h['cumulative_ms']:.2f} ms |" for h in imports["heaviest"]]
    lines += [
        "",
        "First event in a fresh interpreter, through `app.on_iam_event` (moto's server on loopback, no added "
        "latency), medians:",
        "",
        "| code as | Python | import app | first event: irrelevant | then a compliant role "
        "| first event: compliant role | import + first compliant event | AWS requests (compliant first) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for case in output["first_events"]:
        a, b = case["irrelevant_first"], case["relevant_first"]
        requests = ", ".join(f"{k} {v}" for k, v in b["aws_requests"].items()) or "none"
        python = a.get("python_version", "")
        lines.append(
            f"| {a['label']} | {python} | {a['import_ms']:.0f} ms | {a['calls_ms'][0]:.0f} ms "
            f"| {a['calls_ms'][1]:.0f} ms | {b['calls_ms'][0]:.0f} ms | {b['import_ms'] + b['calls_ms'][0]:.0f} ms "
            f"| {requests} |"
        )
    dev = output["first_events"][0]["irrelevant_first"]
    phases = list(dev["modules"])
    lines += [
        "",
        "On the cold path? (development virtualenv; first event irrelevant, then a compliant role)",
        "",
        "| module | " + " | ".join(phases) + " |",
        "|---|" + "---|" * len(phases),
    ]
    for label in WATCHED:
        lines.append(f"| {label} | " + " | ".join("yes" if dev["modules"][p][label] else "no" for p in phases) + " |")
    lines += [
        "",
        "Imports deferred to the first event (top-level imports it triggered, cumulative `-X importtime`):",
        "",
    ]
    lines += ["| code as | first event (irrelevant) | second event (compliant role) |", "|---|---|---|"]
    for case in output["first_events"]:
        cells = [
            ", ".join(f"`{i['module']}` {i['cumulative_ms']:.0f} ms" for i in segment[:6]) or "none"
            for segment in case["lazy_imports"]
        ]
        lines.append(f"| {case['irrelevant_first']['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Log lines written per skipped event: {dev['log_lines_per_skip']} (stdout of the handler).")
    package = output["package"]
    lines.append("")
    if package["sizes"]:
        s = package["sizes"]
        largest = ", ".join(f"{name} {_mib(size)}" for name, size in s["largest"])
        layers = ", ".join(f"{k} {_mib(v)}" for k, v in s["layers"].items()) or "none (no layer configured)"
        lines += [
            f"Deployment package, built with {package['method']}:",
            "",
            "| zip | zipped | unzipped | files | .pyc | app.py + chalicelib | boto3 + botocore + s3transfer |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| deployment.zip | {_mib(s['zipped_bytes'])} | {_mib(s['unzipped_bytes'])} | {s['files']:,} "
            f"| {s['pyc_files']} | {s['app_code_bytes'] / 1024:.0f} KiB | {_mib(s['sdk_bytes'])} |",
            "",
            f"Largest parts, unzipped: {largest}. Layers: {layers}. Its bytecode: {s['pyc_files']:,} files, "
            f"{_mib(s['pyc_bytes'])} unzipped, {_mib(s['pyc_zipped_bytes'])} zipped.",
        ]
    else:
        f = package["fallback"]
        total = sum(f["requirements_installed_bytes"].values())
        lines += [
            f"Packaging not available ({package['method']}): app.py + chalicelib zipped "
            f"{f['app_zip_bytes'] / 1024:.0f} KiB; requirements.txt installed {_mib(total)}.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
