"""`deputy-guard check PATH...` as a process: exit codes, stdin, directory walks, unreadable inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from deputy_guard import cli
from tests.check.conftest import IAC, OWN, run_cli
from tests.documents import COMPLIANT, VULNERABLE

CFN = IAC / "cfn" / "order-workflow.yml"


def write(path: Path, document: object) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2), encoding="utf-8")
    return path


def test_a_directory_is_walked_and_reported_with_exit_1() -> None:
    result = run_cli("check", "--format", "json", str(IAC))
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert list(report) == ["schema_version", "results", "summary", "errors"]
    # the templates and plan, plus terraform-src (1 compliant, 1 not_applicable, 4 non_compliant, 2 needs_review)
    # and foreach (2 compliant, 5 non_compliant)
    assert report["summary"] == {"compliant": 8, "not_applicable": 3, "non_compliant": 13, "needs_review": 11}
    first = report["results"][0]
    assert list(first) == ["path", "resource", "line", "verdict", "problems", "fixed_policy"]


def test_a_template_on_stdin_is_read_like_a_file() -> None:
    result = run_cli("check", "--format", "json", "-", stdin=CFN.read_text(encoding="utf-8"))
    assert result.returncode == 1, result.stderr
    paths = {item["path"] for item in json.loads(result.stdout)["results"]}
    assert paths == {"-"}


def test_stdin_is_the_default_input() -> None:
    result = run_cli("check", "--account", OWN, stdin=json.dumps(COMPLIANT))
    assert (result.returncode, result.stdout) == (0, "verdict: compliant\n")


def test_only_passing_inputs_exit_0(tmp_path: Path) -> None:
    one = write(tmp_path / "a.json", COMPLIANT)
    two = write(tmp_path / "b.json", COMPLIANT)
    result = run_cli("check", "--account", OWN, str(one), str(two))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 trust policies in 2 files: 2 compliant\n"


def test_an_unreadable_input_is_exit_2_after_the_others_are_reported(tmp_path: Path) -> None:
    # Given a vulnerable policy, a missing file and a file that is not JSON
    vulnerable = write(tmp_path / "vulnerable.json", VULNERABLE)
    broken = write(tmp_path / "broken.json", "{not json")
    missing = tmp_path / "missing.json"
    # When checked together
    result = run_cli("check", "--account", OWN, "--format", "json", str(missing), str(vulnerable), str(broken))
    # Then the findings are still reported, each failure is one line on stderr, and the exit is 2
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert [item["verdict"] for item in report["results"]] == ["non_compliant"]
    assert [error["path"] for error in report["errors"]] == [str(missing), str(broken)]
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("deputy-guard: error: ") for line in lines)
    assert "cannot read" in lines[0] and "not JSON" in lines[1]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_exit_2(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.json", VULNERABLE)
    secret.chmod(0)
    result = run_cli("check", "--account", OWN, str(secret))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_named_file_of_another_kind_is_an_error_unless_ignored(tmp_path: Path) -> None:
    workflow = write(tmp_path / "ci.yml", "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n")
    named = run_cli("check", str(workflow), str(CFN))
    assert named.returncode == 2
    assert "not a trust policy, GetRole response, CloudFormation template or Terraform plan" in named.stderr
    assert "OrderWorkflowRole: non_compliant" in named.stdout
    ignored = run_cli("check", "--ignore-unknown", str(workflow), str(CFN))
    assert ignored.returncode == 1, ignored.stderr
    assert "1 other file skipped" in ignored.stdout


def test_a_walk_skips_hidden_folders_and_unknown_files(tmp_path: Path) -> None:
    shutil.copy(CFN, tmp_path / "stack.yml")
    (tmp_path / ".aws-sam").mkdir()
    shutil.copy(CFN, tmp_path / ".aws-sam" / "hidden.yml")
    write(tmp_path / "package.json", {"name": "app", "version": "1.0.0"})
    write(tmp_path / "bucket-policy.json", {"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]})
    result = run_cli("check", "--format", "json", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert {item["path"] for item in json.loads(result.stdout)["results"]} == {str(tmp_path / "stack.yml")}


def test_a_directory_with_nothing_to_check_is_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "package.json", {"name": "app"})
    result = run_cli("check", str(tmp_path))
    assert result.returncode == 2
    assert "in this directory" in result.stderr


def test_a_plain_policy_found_in_a_walk_still_needs_the_account(tmp_path: Path) -> None:
    write(tmp_path / "trust.json", VULNERABLE)
    shutil.copy(CFN, tmp_path / "stack.yml")
    result = run_cli("check", str(tmp_path))
    assert result.returncode == 2
    assert "--account" in result.stderr
    assert "OrderWorkflowRole" in result.stdout


def test_one_plain_policy_keeps_the_single_object_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "trust.json", VULNERABLE)
    assert cli.main(["check", "--account", OWN, "--format", "json", str(path)]) == 1
    assert list(json.loads(capsys.readouterr().out)) == ["verdict", "problems", "fixed_policy"]


def test_a_list_roles_response_gives_every_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roles = {
        "Roles": [
            {"RoleName": name, "Path": "/", "Arn": f"arn:aws:iam::{OWN}:role/{name}", "AssumeRolePolicyDocument": doc}
            for name, doc in (("open", VULNERABLE), ("pinned", COMPLIANT))
        ]
    }
    path = write(tmp_path / "roles.json", roles)
    assert cli.main(["check", "--format", "json", str(path)]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["resource"], r["verdict"]) for r in results] == [("open", "non_compliant"), ("pinned", "compliant")]


def test_text_output_names_file_line_and_role() -> None:
    result = run_cli("check", str(CFN))
    assert f"{CFN}:17: OrderWorkflowRole: non_compliant" in result.stdout
    assert result.stdout.endswith("6 trust policies in 1 file: 2 compliant, 1 non_compliant, 3 needs_review\n"), (
        result.stdout
    )
