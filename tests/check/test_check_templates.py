"""`check` over the project's IaC fixtures: each case's verdict, problems, line and fix in template terms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext, Verdict
from deputy_guard.checking import CheckOptions, Report, Result, check_paths
from tests.check.conftest import FOREIGN, IAC, OWN

CDK = IAC / "cdk" / "cdk.out"
CFN = IAC / "cfn" / "order-workflow.yml"
SAM = IAC / "sam" / "template.yaml"
PLAN = IAC / "terraform" / "plan.json"
PINS = {
    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:states:*:${AWS::AccountId}:*"}},
}


def check(*paths: Path, account: str | None = None) -> Report:
    return check_paths([str(path) for path in paths], CheckOptions(account=account))


def by_resource(report: Report) -> dict[str | None, Result]:
    return {result.resource: result for result in report.results}


def codes(result: Result) -> list[str]:
    return [problem.code.value for problem in result.problems]


# Given each template without --account / When checked / Then every case has its verdict and codes
EXPECTED: dict[Path, dict[str, tuple[Verdict, list[str]]]] = {
    CDK: {
        "HandlerServiceRoleFCDC14AE": (Verdict.NOT_APPLICABLE, []),
        "WorkflowRoleD2A3B0C6": (Verdict.NON_COMPLIANT, ["missing_source_account", "missing_source_arn"]),
        "PinnedWorkflowRole7F1E2D3C": (Verdict.COMPLIANT, []),
        "PartnerExportRoleA1B2C3D4": (Verdict.NEEDS_REVIEW, ["account_unknown", "account_unknown"]),
        "ParameterisedRoleE5F6A7B8": (
            Verdict.NEEDS_REVIEW,
            ["unresolved_value", "missing_source_account", "missing_source_arn"],
        ),
    },
    CFN: {
        "OrderWorkflowRole": (Verdict.NON_COMPLIANT, ["missing_source_account", "missing_source_arn"]),
        "ReportingRole": (Verdict.COMPLIANT, []),
        "AuditRole": (Verdict.COMPLIANT, []),
        "LegacyPartnerRole": (Verdict.NEEDS_REVIEW, ["account_unknown", "account_unknown"]),
        "PartnerRole": (
            Verdict.NEEDS_REVIEW,
            ["unresolved_value", "unresolved_value", "missing_source_account", "missing_source_arn"],
        ),
        "ConditionalRole": (
            Verdict.NEEDS_REVIEW,
            ["unresolved_value", "missing_source_account", "missing_source_arn"],
        ),
    },
    SAM: {
        "ProcessOrderStateMachineRole": (Verdict.NON_COMPLIANT, ["missing_source_account", "missing_source_arn"]),
        "ShipOrderRole": (Verdict.COMPLIANT, []),
        "FulfilmentPartnerRole": (Verdict.NEEDS_REVIEW, ["account_unknown", "account_unknown"]),
        "TrustedPartnerRole": (
            Verdict.NEEDS_REVIEW,
            ["unresolved_value", "missing_source_account", "missing_source_arn"],
        ),
    },
    PLAN: {
        "aws_iam_role.workflow": (Verdict.NON_COMPLIANT, ["missing_source_account", "missing_source_arn"]),
        "aws_iam_role.pinned": (Verdict.COMPLIANT, []),
        'module.partner.aws_iam_role.this["reports"]': (
            Verdict.NEEDS_REVIEW,
            ["foreign_account", "missing_source_account", "missing_source_arn"],
        ),
        "aws_iam_role.computed": (Verdict.NEEDS_REVIEW, ["unresolved_value"]),
        "aws_iam_role.lambda": (Verdict.NOT_APPLICABLE, []),
    },
}


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: p.parent.name)
def test_every_case_of_every_template_gets_its_verdict(path: Path) -> None:
    report = check(path)
    assert not report.failures
    found = {result.resource: (result.verdict, codes(result)) for result in report.results}
    assert found == EXPECTED[path]


def test_a_vulnerable_template_role_gets_a_fix_written_with_intrinsics() -> None:
    # Given CloudFormation YAML whose principal is !Sub states.${AWS::Region}.amazonaws.com
    result = by_resource(check(CFN))["OrderWorkflowRole"]
    # Then the principal is recognised, and the fix keeps it as written and pins with intrinsics
    statement = result.fixed_policy["Statement"][0]
    assert statement["Principal"] == {"Service": {"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}}
    assert statement["Condition"] == PINS
    assert result.fixed_policy["Version"] == "2012-10-17"
    assert result.line == 17


def test_the_fix_in_template_terms_is_compliant_once_deployed() -> None:
    result = by_resource(check(CDK))["WorkflowRoleD2A3B0C6"]
    deployed = {
        **result.fixed_policy,
        "Statement": [
            {
                **result.fixed_policy["Statement"][0],
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": OWN},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{OWN}:*"},
                },
            }
        ],
    }
    assert evaluate(deployed, RoleContext(account_id=OWN)).verdict == Verdict.COMPLIANT


def test_lines_point_at_each_roles_trust_policy() -> None:
    lines = {result.resource: result.line for result in check(CDK, SAM).results}
    text = (CDK / "DeputyGuardDemoStack.template.json").read_text(encoding="utf-8").splitlines()
    assert '"AssumeRolePolicyDocument"' in text[lines["WorkflowRoleD2A3B0C6"] - 1]
    sam = SAM.read_text(encoding="utf-8").splitlines()
    assert sam[lines["ShipOrderRole"] - 1].strip() == "AssumeRolePolicyDocument:"
    # SAM's generated role has no trust policy in the file: it points at the state machine that makes it
    assert sam[lines["ProcessOrderStateMachineRole"] - 1].strip() == "ProcessOrderStateMachine:"


@pytest.mark.parametrize(
    ("account", "verdict", "expected"),
    [
        (
            OWN,
            Verdict.NEEDS_REVIEW,
            ["foreign_account", "foreign_account", "missing_source_account", "missing_source_arn"],
        ),
        (FOREIGN, Verdict.COMPLIANT, []),
    ],
)
def test_a_literal_account_is_compared_with_the_given_account(
    account: str, verdict: Verdict, expected: list[str]
) -> None:
    result = by_resource(check(CFN, account=account))["LegacyPartnerRole"]
    assert (result.verdict, codes(result)) == (verdict, expected)


def test_without_the_account_a_literal_account_is_reported_never_guessed() -> None:
    result = by_resource(check(SAM))["FulfilmentPartnerRole"]
    assert result.verdict == Verdict.NEEDS_REVIEW
    assert FOREIGN in result.problems[0].message
    assert "--account" in result.problems[0].message
    assert result.fixed_policy is None


def test_a_parameter_pins_nothing_and_says_it_is_a_parameter() -> None:
    result = by_resource(check(SAM))["TrustedPartnerRole"]
    assert "TrustedAccount: a template parameter" in result.problems[0].message
    assert result.fixed_policy is None


def test_terraform_takes_the_account_from_the_plans_caller_identity() -> None:
    result = by_resource(check(PLAN))["aws_iam_role.workflow"]
    # The plan is one line: the change is placed by its column too.
    text = PLAN.read_text(encoding="utf-8")
    assert (result.line, result.column) == (
        1,
        text.index('"address":"aws_iam_role.workflow"', text.index("resource_changes")) + 1,
    )
    assert result.fixed_policy["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": OWN},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{OWN}:*"},
    }


def test_terraform_deleted_roles_are_skipped_and_unknown_policies_reported() -> None:
    results = by_resource(check(PLAN))
    assert "aws_iam_role.legacy" not in results
    assert "known only after apply" in results["aws_iam_role.computed"].problems[0].message


def test_an_account_that_contradicts_the_plan_is_refused_for_that_plan() -> None:
    report = check(PLAN, account=FOREIGN)
    assert report.failures and all("contradicts the plan" in failure.message for failure in report.failures)


def test_a_terraform_fix_without_a_known_account_names_the_caller_identity(tmp_path: Path) -> None:
    plan: dict[str, Any] = {
        "format_version": "1.2",
        "resource_changes": [
            {
                "address": "aws_iam_role.sfn",
                "mode": "managed",
                "type": "aws_iam_role",
                "change": {
                    "actions": ["create"],
                    "after": {
                        "assume_role_policy": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                        '"Principal":{"Service":"states.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
                    },
                    "after_unknown": {},
                },
            }
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    (result,) = check(path).results
    assert result.fixed_policy["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.current.account_id}"},
        "ArnLike": {"aws:SourceArn": "arn:aws:states:*:${data.aws_caller_identity.current.account_id}:*"},
    }


def test_a_directory_walk_skips_other_files() -> None:
    report = check(IAC)
    assert not report.failures
    # four templates and plans, the Fn::ForEach template, and the three .tf files of terraform-src
    assert report.files == 8
    assert report.skipped == 4  # manifest.json, buildspec.yml, events/order.json, terraform.tfvars.json
    terraform = IAC / "terraform-src"
    assert {result.path for result in report.results} == {
        str(path)
        for path in (
            CDK / "DeputyGuardDemoStack.template.json",
            CFN,
            SAM,
            PLAN,
            IAC / "foreach" / "workflows.yaml",
            terraform / "main.tf",
            terraform / "modules" / "step-function" / "main.tf",
        )
    }
