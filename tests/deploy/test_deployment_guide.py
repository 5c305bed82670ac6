"""docs/deployment.md stays true to the configuration, the policy and the app it describes."""

from __future__ import annotations

import json
import re

import pytest

import app as chalice_app
from tests.deploy.support import CONFIG_FILE, POLICY_FILE, PROJECT, load_json

GUIDE = PROJECT / "docs" / "deployment.md"


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_the_forwarding_pattern_is_the_apps() -> None:
    blocks = re.findall(r"cat > pattern\.json <<'EOF'\n(.*?)\nEOF", guide(), flags=re.S)
    assert len(blocks) == 1
    assert json.loads(blocks[0]) == chalice_app.IAM_EVENT_PATTERN


def _row(first_cell: str) -> str:
    rows = [line for line in guide().splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"expected one table row for {first_cell}"
    return rows[0]


def test_the_permissions_table_lists_every_statement_and_action() -> None:
    for statement in load_json(POLICY_FILE)["Statement"]:
        row = _row(f"`{statement['Sid']}`")
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            service, name = action.split(":")
            assert f"`{action}`" in row or (f"`{service}:" in row and f"`{name}`" in row), (statement["Sid"], action)
        if statement["Effect"] == "Deny":
            assert "deny" in row


@pytest.mark.parametrize(
    "variable",
    ["DEPUTY_GUARD_MODE", "DEPUTY_GUARD_TABLE", "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER", "LOG_LEVEL"],
)
def test_the_stage_table_shows_each_stages_value(variable: str) -> None:
    row = _row(f"`{variable}`")
    for stage, settings in load_json(CONFIG_FILE)["stages"].items():
        assert f"`{settings['environment_variables'][variable]}`" in row, stage


def test_the_reserved_concurrency_in_the_guide_is_the_configs() -> None:
    stages = load_json(CONFIG_FILE)["stages"]
    row = _row("`on_iam_event`")
    for stage in ("dev", "prod"):
        reserved = stages[stage]["lambda_functions"]["on_iam_event"]["reserved_concurrency"]
        assert f"reserved concurrency {reserved}" in row, stage


@pytest.mark.parametrize(
    "topic",
    [
        "CloudTrail",
        "chalice deploy --stage prod",
        "make package",
        "aws cloudformation deploy",
        "put-parameter",
        "aws sns subscribe",
        "`notify`",
        "`enforce`",
        "deputy-guard:mode,Value=exempt",
        "DEPUTY_GUARD_EXEMPTIONS",
        "/revert",
        "us-east-1",
        "Organization",
        "DeployerPrincipalArn",
        "Mode=enforce",
        "PRECOMPILE=no",
        "Install again",
        "operations.md",
    ],
)
def test_the_guide_covers(topic: str) -> None:
    assert topic in guide()


def test_the_route_b_log_group_exists_before_its_retention_is_set() -> None:
    # A fresh `chalice deploy` leaves the REST API function's group to Lambda's first request: create it first
    text = guide()
    create = text.index("aws logs create-log-group --log-group-name /aws/lambda/deputy-guard-prod ")
    retention = text.index("aws logs put-retention-policy --log-group-name /aws/lambda/deputy-guard-prod ")
    assert create < retention


def test_every_parameter_of_the_template_is_in_the_guide() -> None:
    parameters = load_json(PROJECT / ".chalice" / "resources.json")["Parameters"]
    for name in parameters:
        assert f"`{name}`" in guide(), name


def test_the_uninstall_section_names_what_stays_behind() -> None:
    section = guide().split("## 13.", 1)[1]
    for leftover in ("DynamoDB table", "Slack webhook parameter", "deputy-guard:mode", "KMS key", "log group"):
        assert leftover in section, leftover
    assert "delete-table" in section and "untag-role" in section and "delete-parameter" in section
