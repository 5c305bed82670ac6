"""Fixtures of the deployment tests: the policy evaluator, Chalice's resource graph, one `make package` run."""

from __future__ import annotations

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
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packaged]:
    """`make package` for the prod stage, into a temporary directory, with no network.

    The bytecode needs the runtime's Python; on a machine without it the package is built with PRECOMPILE=no
    and only the bytecode tests are skipped.
    """
    python = runtime_python()
    work = tmp_path_factory.mktemp("package")
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
    yield Packaged(dist=dist, template=load_json(dist / "sam.json"), output=output, runtime_python=python)
