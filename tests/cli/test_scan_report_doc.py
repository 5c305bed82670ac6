"""docs/scan-report.md: its example is the report the code produces, and its tables name every field and value."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from chalicelib.adapters import aws
from chalicelib.domain.models import Action, Verdict
from chalicelib.domain.settings import load_settings
from chalicelib.runtime.wiring import CountingMetrics, build_deps
from chalicelib.service.scan import SCAN_REPORT_SCHEMA_VERSION, scan
from tests.documents import ACCOUNT, FOREIGN, VULNERABLE
from tests.world import World

DOC = Path(__file__).resolve().parents[2] / "docs" / "scan-report.md"
MakeWorld = Callable[..., World]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_example() -> dict[str, Any]:
    """The JSON block under the heading "Example"."""
    section = doc_text().split("## Example", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert block is not None, "docs/scan-report.md has no JSON example"
    return dict(json.loads(block.group(1)))


def doc_table_names(heading: str) -> set[str]:
    """The backquoted names in the first column of the table under ``heading``."""
    section = doc_text().split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)`", section, re.MULTILINE))


def build_report() -> dict[str, Any]:
    """The example's account: one role without pins and one pinned to another account, scanned as a dry run."""
    aws.reset_clients()
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="orders-sfn", Path="/teams/", AssumeRolePolicyDocument=json.dumps(VULNERABLE))
    iam.create_role(RoleName="partner-sfn", AssumeRolePolicyDocument=json.dumps(FOREIGN))
    deps = build_deps(load_settings({}), metrics=CountingMetrics(), idempotent=False)
    report = scan(deps, dry_run=True, account=ACCOUNT).to_dict()
    report["results"].sort(key=lambda row: row["role_name"])
    return report


def test_the_documented_example_is_what_a_scan_reports(make_world: MakeWorld) -> None:
    # Given the example's account (make_world starts moto) / When scanned / Then exactly the documented report
    make_world()
    assert build_report() == doc_example()


def test_the_schema_version_is_documented() -> None:
    assert doc_example()["schema_version"] == SCAN_REPORT_SCHEMA_VERSION
    assert f'`schema_version` | string | `"{SCAN_REPORT_SCHEMA_VERSION}"`' in doc_text()


def test_every_field_is_documented() -> None:
    example = doc_example()
    assert set(example) <= doc_table_names("## Fields")
    assert {key for row in example["results"] for key in row} <= doc_table_names("## Fields")


def test_every_verdict_and_action_is_documented() -> None:
    assert {v.value for v in Verdict} <= doc_table_names("## Verdicts")
    assert {a.value for a in Action} <= doc_table_names("## Actions")


def test_the_per_account_entries_are_documented_field_by_field() -> None:
    # Given an account's entry of `scan --accounts`, failed and with missing roles (every optional field)
    from deputy_guard.org_scan import AccountOutcome

    entry = AccountOutcome(
        ACCOUNT, status="failed", error="cannot assume", report={"missing": ["gone"], "summary": {}}
    ).to_dict()
    # Then the table under its heading names exactly its fields
    assert set(entry) == doc_table_names("## Many accounts")
