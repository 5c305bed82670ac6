"""Fixtures of the deployment tests: the policy evaluator, Chalice's resource graph, one `make package` run."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    PACKAGED_SCHEDULE,
    POLICY_FILE,
    PROJECT,
    STAMP,
    Packaged,
    PolicyEvaluator,
    load_json,
    offline_env,
    runtime_python,
)


@pytest.fixture(scope="session")
def bot_policy() -> PolicyEvaluator:
    return PolicyEvaluator(load_json(POLICY_FILE))


def _walk(model: Any, seen: set[int]) -> Iterator[Any]:
    for dependency in model.dependencies():
        if id(dependency) not in seen:
            seen.add(id(dependency))
            yield dependency
            yield from _walk(dependency, seen)


@pytest.fixture(scope="session")
def chalice_graph() -> Any:
    """stage -> every resource model Chalice builds for it from .chalice/config.json (offline; imports app.py)."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    cache: dict[str, list[Any]] = {}

    def build(stage: str) -> list[Any]:
        if stage not in cache:
            factory = CLIFactory(str(PROJECT), environ={"AWS_DEFAULT_REGION": "us-east-1"})
            application = ApplicationGraphBuilder().build(factory.create_config_obj(stage), stage)
            cache[stage] = list(_walk(application, set()))
        return cache[stage]

    return build


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Packaged]:
    """`make package` for the prod stage, into a temporary directory, with no network.

    The bytecode needs the runtime's Python; on a machine without it the package is built with PRECOMPILE=no
    and only the bytecode tests are skipped. Under pytest-xdist the workers share one build: the first to
    get the lock builds into the run's common temporary directory, the others wait and read it.
    """
    python = runtime_python()
    if worker_id == "master":
        work = tmp_path_factory.mktemp("package")
        output = _make_package(work, python)
    else:
        work = tmp_path_factory.getbasetemp().parent / "package"
        work.mkdir(exist_ok=True)
        with open(work / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = work / "output.txt"
            if not done.exists():
                done.write_text(_make_package(work, python), encoding="utf-8")
            output = done.read_text(encoding="utf-8")
    dist = work / "dist"
    yield Packaged(dist=dist, template=load_json(dist / "sam.json"), output=output, runtime_python=python)


def _make_package(work: Path, python: Path | None) -> str:
    """Run `make package` into ``work``/dist and ``work``/build; its output (the test fails if make does)."""
    dist, build = work / "dist", work / "build"
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(PROJECT),
        "-o",
        STAMP,  # never bootstrap the venv from here: that would need the network
        "package",
        "STAGE=prod",
        f"DIST={dist}",
        f"BUILD={build}",
        f"BIN={Path(sys.executable).parent}",
        f"PYTHON_RUNTIME={python}" if python else "PRECOMPILE=no",
    ]
    result = subprocess.run(
        command,
        env=offline_env(DEPUTY_GUARD_SWEEP_SCHEDULE=PACKAGED_SCHEDULE),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make package failed:\n{output}"
    return output
