"""An exempt role is suppressed, not hidden: every format shows it with its status and its reason.

The CLI as a user runs it, against moto's server over HTTP.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.cli.conftest import run
from tests.e2e.conftest import create_role
from tests.world import VULNERABLE

pytestmark = pytest.mark.e2e
WHY = "legacy batch, retired in Q3 (owner approved)"


@pytest.fixture
def exempt_role(endpoint: str) -> str:
    """A vulnerable role tagged exempt with a reason, and a vulnerable role that is not exempt."""
    create_role(
        "legacy-batch-sfn",
        VULNERABLE,
        Tags=[{"Key": "deputy-guard:mode", "Value": "exempt"}, {"Key": "deputy-guard:reason", "Value": WHY}],
    )
    create_role("orders-sfn", VULNERABLE)
    return endpoint


def test_asff_gives_the_exempt_role_a_suppressed_workflow_with_its_reason(exempt_role: str) -> None:
    # When the account is exported as ASFF
    result = run(exempt_role, "scan", "--format", "asff")
    findings = {f["Resources"][0]["Details"]["AwsIamRole"]["RoleName"]: f for f in json.loads(result.stdout)}
    # Then the exempt role is a finding whose workflow is SUPPRESSED, with the reason as its note
    exempt = findings["legacy-batch-sfn"]
    assert exempt["Workflow"] == {"Status": "SUPPRESSED"}
    assert WHY in exempt["Note"]["Text"] and exempt["Note"]["UpdatedBy"] == "deputy-guard"
    # and the other stays an open finding with no workflow status of ours
    assert "Workflow" not in findings["orders-sfn"] and findings["orders-sfn"]["RecordState"] == "ACTIVE"
    # and the exit code is unchanged: the open finding needs action
    assert result.returncode == 1, result.stderr


def test_sarif_suppresses_the_exempt_role_externally_with_the_justification(exempt_role: str) -> None:
    result = run(exempt_role, "scan", "--format", "sarif")
    results = json.loads(result.stdout)["runs"][0]["results"]
    by_role = {}
    for entry in results:
        by_role.setdefault(entry["locations"][0]["logicalLocations"][0]["name"], []).append(entry)
    assert by_role["legacy-batch-sfn"], "the exempt role is still reported"
    for entry in by_role["legacy-batch-sfn"]:
        [suppression] = entry["suppressions"]
        assert suppression["kind"] == "external" and WHY in suppression["justification"]
    assert all("suppressions" not in entry for entry in by_role["orders-sfn"])


def test_csv_json_and_table_give_the_status_and_the_tagged_reason(exempt_role: str) -> None:
    rows = {
        row["role_name"]: row for row in csv.DictReader(io.StringIO(run(exempt_role, "scan", "--format", "csv").stdout))
    }
    assert rows["legacy-batch-sfn"]["action"] == "exempt" and WHY in rows["legacy-batch-sfn"]["reason"]
    report = json.loads(run(exempt_role, "scan", "--format", "json").stdout)
    [row] = [r for r in report["results"] if r["role_name"] == "legacy-batch-sfn"]
    assert row["action"] == "exempt" and WHY in row["reason"]
    table = run(exempt_role, "scan").stdout
    [line] = [line for line in table.splitlines() if "legacy-batch-sfn" in line]
    assert "exempt" in line and WHY in line


def test_only_exempt_findings_leave_the_exit_code_clean(endpoint: str) -> None:
    # Given only an exempt role
    create_role("legacy-batch-sfn", VULNERABLE, Tags=[{"Key": "deputy-guard:mode", "Value": "exempt"}])
    # When exported in each format, the exit code stays 0 (settled) while the finding is listed
    for format_name in ("asff", "sarif", "csv", "json", "table"):
        result = run(endpoint, "scan", "--format", format_name)
        assert result.returncode == 0, (format_name, result.stderr)
        assert "legacy-batch-sfn" in result.stdout, format_name
