"""requirements.txt (what Chalice installs into the Lambda) is generated from pyproject.toml and never drifts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deputy_guard import requirements
from tests.deploy.support import PROJECT


def test_requirements_txt_matches_pyproject() -> None:
    # Given pyproject.toml's [project].dependencies / When rendered / Then requirements.txt is exactly that
    expected = requirements.render_from(PROJECT / "pyproject.toml")
    actual = (PROJECT / "requirements.txt").read_text(encoding="utf-8")
    assert actual == expected, "requirements.txt is out of date: run `make requirements`"


def test_every_runtime_dependency_but_chalice_is_listed() -> None:
    with (PROJECT / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    listed = [
        line
        for line in (PROJECT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert listed == [d for d in declared if requirements.requirement_name(d) != "chalice"]
    assert any(requirements.requirement_name(d) == "chalice" for d in declared)


def test_chalice_is_left_out_whatever_its_spelling() -> None:
    pyproject = {"project": {"dependencies": ["Chalice>=1.31", "boto3>=1.34", "aws_lambda.powertools[tracer]>=3"]}}
    assert requirements.runtime_requirements(pyproject) == ["boto3>=1.34", "aws_lambda.powertools[tracer]>=3"]


def test_names_are_normalised_per_pep_503() -> None:
    assert requirements.requirement_name("Aws_Lambda.Powertools[tracer]>=3 ; python_version>'3'") == (
        "aws-lambda-powertools"
    )


@pytest.mark.parametrize("pyproject", [{}, {"project": {}}, {"project": {"dependencies": "boto3"}}])
def test_a_pyproject_without_a_dependency_list_is_an_error(pyproject: dict[str, object]) -> None:
    with pytest.raises(requirements.RequirementsError):
        requirements.runtime_requirements(pyproject)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deputy_guard.requirements", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_passes_on_the_committed_file() -> None:
    result = _run("--check")
    assert (result.returncode, result.stderr) == (0, "")


def test_check_fails_on_a_drifted_file(tmp_path: Path) -> None:
    drifted = tmp_path / "requirements.txt"
    drifted.write_text("boto3\n", encoding="utf-8")
    result = _run("--check", str(drifted))
    assert result.returncode == 1
    assert "make requirements" in result.stderr


def test_printing_renders_the_file() -> None:
    result = _run()
    assert result.returncode == 0
    assert result.stdout == (PROJECT / "requirements.txt").read_text(encoding="utf-8")
