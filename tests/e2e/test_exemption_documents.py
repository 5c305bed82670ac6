"""Exemptions kept in a document, over real HTTP: the CLI reads a file or an SSM parameter, the bot the parameter.

The document is shaped as the operations guide shows it (account, role glob, reason, expiry per entry).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from deputy_guard.demo_data import cloudtrail_event
from deputy_guard.embedded import SlackStandIn
from tests.e2e.conftest import CLI, cli_env, client, create_role
from tests.world import VULNERABLE

pytestmark = pytest.mark.e2e

OTHER_ACCOUNT = "999988887777"


def run(endpoint: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, env=cli_env(endpoint, **env), check=False
    )


def document(account: str) -> str:
    return f"""\
# reviewed by the platform team
exemptions:
  - account: "{account}"
    role: legacy-*
    reason: retired at the end of the quarter
    expires: 2099-03-31
  - role: batch-old-*
    reason: replaced by the new pipeline
    expires: 2026-01-31
  - account: "{OTHER_ACCOUNT}"
    role: orders-*
    reason: another account's decision
"""


def own_account() -> str:
    return str(client("sts").get_caller_identity()["Account"])


def results(stdout: str) -> dict[str, dict[str, Any]]:
    return {row["role_name"]: row for row in json.loads(stdout)["results"]}


def test_scan_reads_a_yaml_file_reports_the_expired_entry_and_ignores_other_accounts_entries(
    endpoint: str, tmp_path: Path
) -> None:
    # Given three vulnerable roles and the exemptions file that names them
    for name in ("legacy-etl", "batch-old-report", "orders-sfn"):
        create_role(name, VULNERABLE)
    path = tmp_path / "exemptions.yaml"
    path.write_text(document(own_account()), encoding="utf-8")
    # When the account is scanned with the file named in the setting
    result = run(endpoint, "scan", "--format", "json", DEPUTY_GUARD_EXEMPTIONS=str(path))
    rows = results(result.stdout)
    # Then the active entry exempts its role, naming the file's line
    assert rows["legacy-etl"]["action"] == "exempt"
    # And the role of the expired entry is a finding again, the reason saying the entry expired and where it is
    assert rows["batch-old-report"]["action"] == "would_fix"
    assert f"{path} line 7" in rows["batch-old-report"]["reason"]
    assert "expired on 2026-01-31" in rows["batch-old-report"]["reason"]
    # And an entry for another account does not exempt this account's role
    assert rows["orders-sfn"]["action"] == "would_fix"
    # And the scan says on stderr which entries expired
    assert f"{path} line 7" in result.stderr and "expired on 2026-01-31" in result.stderr
    assert result.returncode == 1
    # And a scan across accounts reads the same file and says the same
    many = run(endpoint, "scan", "--accounts", own_account(), "--format", "json", DEPUTY_GUARD_EXEMPTIONS=str(path))
    (entry,) = json.loads(many.stdout)["accounts"]
    assert {r["role_name"]: r["action"] for r in entry["results"]}["legacy-etl"] == "exempt"
    assert f"{path} line 7" in many.stderr and "expired on 2026-01-31" in many.stderr


def test_a_bad_file_stops_the_scan_with_one_line_naming_the_file_and_line(endpoint: str, tmp_path: Path) -> None:
    create_role("legacy-etl", VULNERABLE)
    path = tmp_path / "exemptions.yaml"
    path.write_text("exemptions:\n  - role: legacy-*\n    expires: next spring\n", encoding="utf-8")
    result = run(endpoint, "scan", DEPUTY_GUARD_EXEMPTIONS=str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"DEPUTY_GUARD_EXEMPTIONS: {path} line 2: expires must be a date" in line


def test_the_cli_reads_an_ssm_parameter(endpoint: str) -> None:
    create_role("legacy-etl", VULNERABLE)
    client("ssm").put_parameter(Name="/deputy-guard/exemptions", Type="String", Value=document(own_account()))
    result = run(endpoint, "scan", "--format", "json", DEPUTY_GUARD_EXEMPTIONS="ssm:/deputy-guard/exemptions")
    assert results(result.stdout)["legacy-etl"]["action"] == "exempt", result.stderr
    assert "/deputy-guard/exemptions line 3" in results(result.stdout)["legacy-etl"]["reason"]


def test_the_bot_reads_the_parameter_holding_json_and_tells_owners_of_an_expired_entry(
    endpoint: str, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalice.test import Client

    import app as app_module
    from chalicelib.runtime import container

    # Given the deployed form: the parameter holds JSON (the Lambda package leaves YAML out)
    account = own_account()
    entries = [
        {"account": account, "role": "legacy-*", "reason": "retired", "expires": "2099-01-31"},
        {"role": "payments-*", "reason": "audit pending", "expires": "2026-01-31"},
    ]
    client("ssm").put_parameter(Name="/deputy-guard/exemptions", Type="String", Value=json.dumps(entries, indent=2))
    monkeypatch.setenv("DEPUTY_GUARD_EXEMPTIONS", "ssm:/deputy-guard/exemptions")
    monkeypatch.setenv("DEPUTY_GUARD_MODE", "enforce")
    monkeypatch.setenv("DEPUTY_GUARD_TABLE", "deputy-guard-e2e")
    monkeypatch.setenv("DEPUTY_GUARD_SLACK_WEBHOOK_URL", slack.url)
    container.reset()
    assert run(endpoint, "setup").returncode == 0
    create_role("legacy-etl", VULNERABLE)
    create_role("payments-sfn", VULNERABLE)
    with Client(app_module.app, stage_name="e2e", project_dir=tempfile.gettempdir()) as lambdas:
        # When CloudTrail reports both roles
        exempt = lambdas.lambda_.invoke(
            "on_iam_event", cloudtrail_event(account, "CreateRole", "legacy-etl", "bob", VULNERABLE)
        ).payload
        fixed = lambdas.lambda_.invoke(
            "on_iam_event", cloudtrail_event(account, "CreateRole", "payments-sfn", "bob", VULNERABLE)
        ).payload
    # Then the parameter's entry exempts its role, naming the entry's line
    assert exempt["action"] == "exempt" and "/deputy-guard/exemptions line 2" in exempt["reason"], exempt
    # And the role whose entry expired is fixed, the owners' message saying the exemption expired
    assert fixed["action"] == "fixed" and "expired on 2026-01-31" in fixed["reason"], fixed
    (message,) = [m for m in slack.received if "payments-sfn" in json.dumps(m)]
    assert "expired on 2026-01-31" in json.dumps(message)
