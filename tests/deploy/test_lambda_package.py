"""The deployment package and the functions that run it: runtime, architecture, bytecode, timeouts.

The bytecode tests need the runtime's Python (python3.13, on the PATH or in pyenv); on a machine without it
`make package` runs with PRECOMPILE=no and those tests are skipped, the others still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.domain.settings import DEFAULT_SCAN_BUDGET_SECONDS, MAX_SCAN_BUDGET_SECONDS
from tests.deploy.stack import FUNCTIONS
from tests.deploy.support import ARCHITECTURE, PROJECT, RUNTIME, STAMP, Packaged, bundle, offline_env

pytestmark = pytest.mark.slow

API_GATEWAY_LIMIT_SECONDS = 29
# The modules a first event loads, from the package: app, the bot's code and its heaviest dependencies.
COLD_PATH = (
    "import app, boto3, chalicelib.runtime.handlers, chalicelib.runtime.wiring; "
    "from aws_lambda_powertools.utilities import parameters"
)


def _names(packaged: Packaged) -> list[str]:
    with zipfile.ZipFile(packaged.dist / "deployment.zip") as archive:
        return archive.namelist()


def _needs_bytecode(packaged: Packaged) -> Path:
    if packaged.runtime_python is None:
        pytest.skip(f"no {RUNTIME} interpreter on this machine: the package was built with PRECOMPILE=no")
    return packaged.runtime_python


# --- runtime and architecture ------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_runs_the_pinned_runtime_on_arm64(packaged: Packaged, function: str) -> None:
    properties = packaged.template["Resources"][function]["Properties"]
    assert properties["Runtime"] == RUNTIME  # whatever Python ran `chalice package`
    assert properties["Architectures"] == [ARCHITECTURE]


def test_the_makefile_builds_for_the_runtime_the_tests_expect() -> None:
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    assert f"LAMBDA_RUNTIME ?= {RUNTIME}\n" in makefile
    assert RUNTIME in bundle().SUPPORTED_RUNTIMES


def test_make_package_says_in_one_line_when_the_runtimes_python_is_missing(tmp_path: Path) -> None:
    # Given no Python 3.13 at the path given / When `make package` runs / Then it stops before building anything
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(PROJECT),
            "-o",
            STAMP,
            "package",
            f"DIST={tmp_path / 'dist'}",
            f"BUILD={tmp_path / 'build'}",
            f"BIN={Path(sys.executable).parent}",
            "PYTHON_RUNTIME=/nonexistent/python3.13",
        ],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no Python 3.13 interpreter" in errors[0] and "PYTHON_RUNTIME=" in errors[0]
    assert not (tmp_path / "dist").exists() and not (tmp_path / "build").exists()


# --- contents ------------------------------------------------------------------------------------------------


def test_the_package_holds_the_app_and_its_runtime_dependencies(packaged: Packaged) -> None:
    names = set(_names(packaged))
    project_lib = {p.relative_to(PROJECT).as_posix() for p in (PROJECT / "chalicelib").rglob("*") if p.is_file()}
    project_lib = {n for n in project_lib if "__pycache__" not in n and not n.endswith(".pyc")}
    assert {"app.py", "chalice/app.py", "chalice/__init__.py"} <= names
    assert project_lib <= names
    top = {n.split("/", 1)[0] for n in names}
    for package in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "aws_lambda_powertools"):
        assert package in top, package
    assert not top & {"tests", "policies", "docs", "click", "yaml", "moto", "pytest"}  # no dev-only code


def test_every_module_has_hash_based_bytecode_for_the_runtime(packaged: Packaged) -> None:
    python = _needs_bytecode(packaged)
    magic = subprocess.run(
        [str(python), "-c", "import importlib.util, sys; sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    tag = "cpython-" + RUNTIME.removeprefix("python").replace(".", "")
    with zipfile.ZipFile(packaged.dist / "deployment.zip") as archive:
        names = set(archive.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        compiled = sorted(n for n in names if n.endswith(".pyc"))
        # Then one .pyc per module, beside it in __pycache__, for the runtime's Python only
        expected = {f"{os.path.dirname(n)}/__pycache__/{Path(n).stem}.{tag}.pyc".lstrip("/") for n in sources}
        assert set(compiled) == expected
        for name in compiled:
            header = archive.read(name)[:16]
            # the runtime's magic number; flags 0b01: hash-based, source not checked (the package never changes)
            assert header[:4] == magic, name
            assert int.from_bytes(header[4:8], "little") == 0b01, name


def test_the_runtime_loads_the_bytecode_and_compiles_nothing(packaged: Packaged, tmp_path: Path) -> None:
    python = _needs_bytecode(packaged)
    with zipfile.ZipFile(packaged.dist / "deployment.zip") as archive:
        archive.extractall(tmp_path)
    # Given the unzipped package as /var/task holds it: the dates of Chalice's zip, read-only, no write-back
    for path in tmp_path.rglob("*.py"):
        os.utime(path, (315532800, 315532800))  # 1980-01-01, as zipped
    done = subprocess.run(
        [str(python), "-I", "-S", "-B", "-v", "-c", f"import sys; sys.path.insert(0, '.'); {COLD_PATH}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=offline_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loads = [line for line in done.stderr.splitlines() if line.startswith("# code object from ")]
    from_package = [line for line in loads if str(tmp_path) in line]
    # Then every module of the package came from its bytecode, none from its source
    assert len(from_package) > 200
    assert [line for line in from_package if not line.endswith(".pyc'")] == []


@pytest.mark.parametrize("interpreter", ["build machine", "runtime"])
def test_the_package_imports_on_its_own(packaged: Packaged, tmp_path: Path, interpreter: str) -> None:
    # Given only the package and the standard library (-I -S: no site-packages) / When the app is imported
    python = sys.executable if interpreter == "build machine" else str(_needs_bytecode(packaged))
    with zipfile.ZipFile(packaged.dist / "deployment.zip") as archive:
        archive.extractall(tmp_path)
    code = "\n".join(
        [
            "import os, sys; sys.path.insert(0, '.')",
            "import app, boto3, chalicelib.runtime.wiring, chalicelib.service.enforce",
            "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer",
            "from aws_lambda_powertools.utilities import parameters",
            "here = os.path.realpath(os.getcwd())",
            "for module in (boto3, parameters, app):",
            "    assert os.path.realpath(module.__file__).startswith(here), module.__file__",
            "boto3.client('iam', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')",
            "print(app.app.app_name, sorted(app.app.routes))",
        ]
    )
    result = subprocess.run(
        [python, "-I", "-S", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=offline_env(),
    )
    # Then it imports, with boto3 from the package, not from the build machine
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deputy-guard ")


# --- time limits -----------------------------------------------------------------------------------------------


def test_the_api_function_stops_before_api_gateway_gives_up(packaged: Packaged) -> None:
    timeout = packaged.template["Resources"]["APIHandler"]["Properties"]["Timeout"]
    assert MAX_SCAN_BUDGET_SECONDS < timeout <= API_GATEWAY_LIMIT_SECONDS


def worst_call_seconds() -> float:
    """One AWS call at its worst: every attempt times out connecting and reading, with the largest backoff."""
    from chalicelib.adapters import aws

    client = aws.make_client("iam", "us-east-1")
    config = client.meta.config
    attempts = config.retries["total_max_attempts"]
    # Adaptive mode is standard mode's attempts and backoff plus a client-side rate limiter, whose waits come
    # only after a throttle and are bounded by the scan checking its budget while it waits for a read.
    assert config.retries["mode"] in ("standard", "adaptive")
    # botocore's standard mode sleeps up to min(20, 2 ** (n - 1)) seconds before retry n
    backoff = sum(min(20.0, 2.0 ** (n - 1)) for n in range(1, attempts))
    return float(attempts * (config.connect_timeout + config.read_timeout) + backoff)


def test_one_aws_call_cannot_outlast_the_scan_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the clients the bot builds (fake credentials: no request is sent)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    from chalicelib.adapters import aws

    aws.reset_clients()
    try:
        worst = worst_call_seconds()
    finally:
        aws.reset_clients()
    # Then a call that hangs, with every retry, still ends within the default budget and API Gateway's 29 s
    assert worst <= DEFAULT_SCAN_BUDGET_SECONDS < API_GATEWAY_LIMIT_SECONDS
