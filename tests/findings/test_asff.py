"""ASFF findings (chalicelib.domain.asff): Security Hub's required fields, its limits, the patch and the diff."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import unquote

import botocore.session
import pytest
from botocore.validate import ParamValidator

from chalicelib.domain.asff import (
    ACTIVE,
    ARCHIVED,
    BATCH_SIZE,
    GENERATOR_ID,
    PRODUCT_FIELD_LIMIT,
    batches,
    finding_id,
    is_finding,
    severity,
    to_finding,
    to_findings,
)
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import Action, EngineOptions, RoleContext
from chalicelib.domain.plan import RoleResult
from chalicelib.domain.policy import render_diff
from tests.documents import ACCOUNT, COMPLIANT, FOREIGN, VULNERABLE

NOW = datetime(2026, 11, 30, 12, 0, 1, 250000, tzinfo=UTC)
REGION = "eu-west-1"
# Security Hub's required top-level attributes for BatchImportFindings (ASFF reference, "Required attributes").
REQUIRED = {
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
}


def result(
    document: dict,
    action: Action,
    name: str = "orders-sfn",
    path: str = "/teams/",
    change_id: str | None = None,
) -> RoleResult:
    arn = f"arn:aws:iam::{ACCOUNT}:role{path}{name}"
    evaluation = evaluate(document, RoleContext.from_role_arn(arn), EngineOptions())
    after = evaluation.fixed_policy
    return RoleResult(
        role_name=name,
        role_arn=arn,
        verdict=evaluation.verdict,
        action=action,
        reason="notify mode: owners told, the ready patch attached",
        evaluation=evaluation,
        before=document,
        after=after,
        diff=render_diff(document, after) if after else "",
        change_id=change_id,
    )


def validate_for_batch_import(findings: list[dict]) -> None:
    """botocore's own model of BatchImportFindings: every field name, type and required member checked."""
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    report = ParamValidator().validate({"Findings": findings}, shape)
    assert not report.has_errors(), report.generate_report()


def test_an_open_finding_carries_every_required_field() -> None:
    # Given a role without pins / When rendered as ASFF
    finding = to_finding(result(VULNERABLE, Action.NOTIFIED), region=REGION, now=NOW)
    # Then Security Hub's required fields are there, with a custom integration's product ARN
    assert set(finding) >= REQUIRED
    assert finding["SchemaVersion"] == "2018-10-08"
    assert finding["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
    assert finding["AwsAccountId"] == ACCOUNT
    assert finding["GeneratorId"] == GENERATOR_ID
    assert finding["Id"] == finding_id(ACCOUNT, "orders-sfn")
    assert finding["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]
    assert finding["CreatedAt"] == finding["UpdatedAt"] == "2026-11-30T12:00:01.250Z"
    assert finding["Severity"] == {"Label": "HIGH", "Original": "non_compliant"}
    assert finding["RecordState"] == ACTIVE and finding["Compliance"] == {"Status": "FAILED"}
    validate_for_batch_import([finding])


def test_the_resource_is_the_iam_role_with_its_trust_policy() -> None:
    finding = to_finding(result(VULNERABLE, Action.NOTIFIED), region=REGION, now=NOW)
    (resource,) = finding["Resources"]
    assert resource["Type"] == "AwsIamRole"
    assert resource["Id"] == f"arn:aws:iam::{ACCOUNT}:role/teams/orders-sfn"
    assert (resource["Partition"], resource["Region"]) == ("aws", REGION)
    details = resource["Details"]["AwsIamRole"]
    assert (details["RoleName"], details["Path"]) == ("orders-sfn", "/teams/")
    assert json.loads(unquote(details["AssumeRolePolicyDocument"])) == VULNERABLE


def test_the_finding_carries_the_remediation_and_the_diff() -> None:
    role = result(VULNERABLE, Action.NOTIFIED)
    finding = to_finding(role, region=REGION, now=NOW)
    text = finding["Remediation"]["Recommendation"]["Text"]
    assert f"aws:SourceAccount={ACCOUNT}" in text and "deputy-guard scan --fix --role orders-sfn" in text
    assert finding["Remediation"]["Recommendation"]["Url"].startswith("https://docs.aws.amazon.com/step-functions/")
    assert finding["ProductFields"]["deputy-guard/Diff"] == role.diff
    assert '+          "aws:SourceAccount": "111122223333"' in role.diff
    assert finding["ProductFields"]["deputy-guard/ProblemCodes"] == "missing_source_account,missing_source_arn"
    assert finding["ProductFields"]["deputy-guard/Action"] == "notified"


def test_a_fixed_role_is_archived_with_its_revert_command() -> None:
    finding = to_finding(result(VULNERABLE, Action.FIXED, change_id="c-1"), region=REGION, now=NOW, resolved=True)
    assert finding["RecordState"] == ARCHIVED and finding["Compliance"] == {"Status": "PASSED"}
    assert "deputy-guard revert orders-sfn" in finding["Remediation"]["Recommendation"]["Text"]
    assert finding["ProductFields"]["deputy-guard/ChangeId"] == "c-1"
    assert "Workflow" not in finding  # the customer's field: set with BatchUpdateFindings, never on import
    validate_for_batch_import([finding])


@pytest.mark.parametrize(
    ("document", "label"),
    [(VULNERABLE, "HIGH"), (FOREIGN, "CRITICAL"), ({**VULNERABLE, "Statement": [{"Effect": "Allow"}]}, "MEDIUM")],
)
def test_severity_follows_the_problem(document: dict, label: str) -> None:
    assert severity(result(document, Action.NOTIFIED)) == label


def test_a_scan_gives_open_findings_and_archives_what_it_fixed_only() -> None:
    results = [
        result(VULNERABLE, Action.WOULD_FIX, "a"),
        result(FOREIGN, Action.REVIEW, "b"),
        result(COMPLIANT, Action.NONE, "c"),
        result(VULNERABLE, Action.FIXED, "d"),
        result(VULNERABLE, Action.EXEMPT, "e"),
    ]
    findings = to_findings(results, region=REGION, now=NOW)
    assert [(f["Resources"][0]["Details"]["AwsIamRole"]["RoleName"], f["RecordState"]) for f in findings] == [
        ("a", ACTIVE),
        ("b", ACTIVE),
        ("d", ARCHIVED),
        ("e", ACTIVE),
    ]
    assert not is_finding(results[2])
    validate_for_batch_import(findings)


def test_long_texts_stay_within_security_hubs_limits() -> None:
    # Given a role whose diff and reason are far longer than one ProductFields value
    role = result(VULNERABLE, Action.NOTIFIED, name="r" * 64)
    long_role = RoleResult(**{**vars(role), "diff": "+x\n" * 5000, "reason": "why " * 1000})
    finding = to_finding(long_role, region=REGION, now=NOW)
    # Then every value fits, and the diff is split over numbered fields
    assert len(finding["Title"]) <= 256 and len(finding["Description"]) <= 1024
    assert len(finding["Remediation"]["Recommendation"]["Text"]) <= 512
    assert all(len(k) <= 128 and len(v) <= PRODUCT_FIELD_LIMIT for k, v in finding["ProductFields"].items())
    parts = [k for k in finding["ProductFields"] if k.startswith("deputy-guard/Diff")]
    assert parts[:3] == ["deputy-guard/Diff", "deputy-guard/Diff/2", "deputy-guard/Diff/3"]
    assert "".join(finding["ProductFields"][k] for k in parts) == long_role.diff
    assert len(finding["ProductFields"]) <= 47  # Security Hub adds its own aws/securityhub/* keys up to 50
    validate_for_batch_import([finding])


def test_batches_hold_at_most_a_hundred() -> None:
    assert [len(b) for b in batches(list(range(250)))] == [BATCH_SIZE, BATCH_SIZE, 50]
