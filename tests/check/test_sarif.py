"""`check --format sarif`: valid SARIF 2.1.0 that code scanning accepts, with stable fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema

from chalicelib.domain.models import ProblemCode
from tests.check.conftest import IAC, REPO, run_cli

PLAN_FILE = IAC / "terraform" / "plan.json"

SCHEMA = json.loads((REPO / "tests" / "fixtures" / "sarif" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
CFN = IAC / "cfn" / "order-workflow.yml"


def sarif(*args: str, cwd: Path = REPO) -> tuple[int, dict[str, Any]]:
    result = run_cli("check", "--format", "sarif", *args, cwd=cwd)
    return result.returncode, json.loads(result.stdout)


def test_the_log_is_valid_against_the_official_schema() -> None:
    status, log = sarif(str(IAC.relative_to(REPO)))
    assert status == 1
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1


def test_one_rule_per_problem_code_with_help() -> None:
    _, log = sarif(str(CFN))
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "deputy-guard" and driver["version"]
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == [code.value for code in ProblemCode]
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["helpUri"] == f"docs/shift-left.md#{rule['id']}"
    docs = (REPO / "docs" / "shift-left.md").read_text(encoding="utf-8")
    assert all(f"### {rule['id']}\n" in docs for rule in rules)


def test_results_have_levels_messages_and_repository_relative_locations() -> None:
    _, log = sarif("tests/fixtures/iac/cfn/order-workflow.yml")
    results = log["runs"][0]["results"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_role.setdefault(result["message"]["text"].split(" ")[1], []).append(result)
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert {r["level"] for r in by_role["OrderWorkflowRole"]} == {"error"}
    assert {r["level"] for r in by_role["PartnerRole"]} == {"warning"}
    assert "ReportingRole" not in by_role  # compliant roles raise no alert
    location = by_role["OrderWorkflowRole"][0]["locations"][0]["physicalLocation"]
    assert location == {
        "artifactLocation": {"uri": "tests/fixtures/iac/cfn/order-workflow.yml"},
        "region": {"startLine": 17},
    }


def fingerprints(log: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (result["ruleId"], result["partialFingerprints"]["deputyGuardFinding/v1"])
        for result in log["runs"][0]["results"]
    ]


def test_fingerprints_are_stable_across_runs_and_line_shifts(tmp_path: Path) -> None:
    # Given the same template twice, the second with lines added above every role
    shutil.copy(CFN, tmp_path / "stack.yml")
    _, before = sarif("stack.yml", cwd=tmp_path)
    _, again = sarif("stack.yml", cwd=tmp_path)
    text = CFN.read_text(encoding="utf-8").replace("Resources:\n", "# a comment\n\n\nResources:\n")
    (tmp_path / "stack.yml").write_text(text, encoding="utf-8")
    _, shifted = sarif("stack.yml", cwd=tmp_path)
    # Then the fingerprints are the same, and unique, while the lines moved
    assert fingerprints(before) == fingerprints(again) == fingerprints(shifted)
    assert len(set(fingerprints(before))) == len(fingerprints(before))
    line = before["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"]
    moved = shifted["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert moved == line + 3


def test_an_unreadable_input_fails_the_invocation_but_keeps_the_results(tmp_path: Path) -> None:
    status, log = sarif(str(CFN), str(tmp_path / "missing.yml"))
    assert status == 2
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    run = log["runs"][0]
    assert run["results"]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "cannot read" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_plan_findings_have_a_region_and_name_their_declaration(tmp_path: Path) -> None:
    # Given the plan pretty-printed (as `terraform show -json | jq .` writes it) and as Terraform writes it
    plan = json.loads(PLAN_FILE.read_text(encoding="utf-8"))
    pretty = tmp_path / "plan.json"
    pretty.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    for path in (PLAN_FILE, pretty):
        # When checked as SARIF
        log = json.loads(run_cli("check", "--format", "sarif", str(path)).stdout)
        results = [r for r in log["runs"][0]["results"] if "module.partner" in r["message"]["text"]]
        # Then each result points at the change's address in the plan file
        assert results
        for result in results:
            region = result["locations"][0]["physicalLocation"]["region"]
            text = path.read_text(encoding="utf-8").splitlines()[region["startLine"] - 1]
            at = text[region["startColumn"] - 1 :].replace(" ", "")
            assert at.startswith('"address":"module.partner.aws_iam_role.this')
            # And the message names where the configuration declares it
            assert "Declared as aws_iam_role.this in the module ./modules/partner" in result["message"]["text"]
