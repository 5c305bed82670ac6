"""`deputy-guard demo`, run as a user runs it, checked for its outcomes (not its wording)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import CLI

pytestmark = pytest.mark.e2e


def run_demo(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"} | extra
    return subprocess.run([CLI, "demo", *args], capture_output=True, text=True, timeout=180, env=env, check=False)


@pytest.fixture(scope="module")
def enforce_summary() -> dict[str, Any]:
    result = run_demo("--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_demo_fixes_the_vulnerable_roles_from_events_and_the_sweep(enforce_summary: dict[str, Any]) -> None:
    fixes = {f["role_name"]: f["trigger"] for f in enforce_summary["fixes"]}
    assert fixes == {
        "orders-pipeline-sfn": "event",
        "reporting-sfn": "event",
        "etl-mixed-sfn": "event",
        "fraud-check-sfn": "event",  # UntagRole: the exempt tag removed acts at once
        "nightly-report-sfn": "sweep",
    }


def test_demo_leaves_what_it_must_not_touch(enforce_summary: dict[str, Any]) -> None:
    final = enforce_summary["final_verdicts"]
    assert final["partner-sfn"] == "needs_review"
    assert final["legacy-batch-sfn"] == "non_compliant"  # centrally exempt
    assert final["orders-stack-sfn"] == "non_compliant"  # CloudFormation: patch sent instead
    assert final["AWSServiceRoleForStepFunctionsDemo"] == "not_applicable"
    assert final["billing-sfn"] == "compliant"


def test_demo_events_show_skips_echo_and_redelivery(enforce_summary: dict[str, Any]) -> None:
    reasons = [e.get("reason") for e in enforce_summary["events"] if e.get("status") == "skipped"]
    assert reasons == ["no_step_functions_principal", "failed_call", "own_event"]
    assert enforce_summary["events"][-1]["replayed"] is True


def test_demo_messages_arrive_on_slack_and_sns(enforce_summary: dict[str, Any]) -> None:
    slack = enforce_summary["slack_messages"]
    assert len(slack) == len(enforce_summary["sns_messages"]) == 7
    roles = (
        "orders-pipeline-sfn",
        "reporting-sfn",
        "etl-mixed-sfn",
        "partner-sfn",
        "orders-stack-sfn",
        "fraud-check-sfn",
    )
    for role in roles:
        assert sum(role in text for text in slack) == 1, role


def test_demo_scan_over_http_is_complete(enforce_summary: dict[str, Any]) -> None:
    assert enforce_summary["scan"]["complete"] is True
    assert sum(enforce_summary["scan"]["summary"].values()) == 11


def test_demo_shows_a_slack_approval_from_alert_to_updated_message(enforce_summary: dict[str, Any]) -> None:
    approval = enforce_summary["approval"]
    # A notify-mode alert with buttons, a signed click by the local approver, the fix, the message updated
    assert approval["alert_buttons"] == ["apply_fix", "exempt_30d"]
    # (how fast Slack's click is answered is bench/bench_approvals.py's target, not a test's)
    assert approval["click_status"] == 200
    assert (approval["action"], approval["actor"]) == ("fix", "slack:U0DEMOAPPROVER")
    assert approval["final_verdict"] == "compliant"
    assert approval["message_updated"] is True and approval["role_name"] in approval["updated_header"]
    # And the same click again is refused, privately
    assert approval["replay"] == "ephemeral" and "already used" in approval["replay_text"]


def test_dry_run_demo_changes_nothing() -> None:
    result = run_demo("--json", "--mode", "dry-run")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["fixes"] == [] and summary["slack_messages"] == [] and summary["sns_messages"] == []
    assert summary["final_verdicts"]["orders-pipeline-sfn"] == "non_compliant"
    assert summary["approval"] == {"skipped": "dry-run"}


def test_demo_works_behind_a_proxy_the_shell_sets() -> None:
    # Given a shell whose proxy would swallow loopback traffic (a dead local port here)
    result = run_demo("--json", "--mode", "notify", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    # Then the demo still talks to its own loopback servers
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["slack_messages"]) == 7


def test_human_output_tells_the_story() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    sections = ("seeded account", "on_iam_event", "sweep", "/scans", "diffs applied", "Slack messages", "summary:")
    for section in (*sections, "Slack approval", "/slack/actions (signed) -> 200"):
        assert section in result.stdout
    assert '+          "aws:SourceAccount"' in result.stdout
    # The embedded AWS is gone when the demo ends: no revert to try there, but how to keep it up to try one
    assert "undo a fix with: deputy-guard revert" not in result.stdout
    assert "`deputy-guard demo --keep-running` keeps it up" in result.stdout


def test_keep_running_serves_until_terminated_then_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
    process = subprocess.Popen(
        [CLI, "demo", "--keep-running"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "curl -s -X POST" in line:
                break
        # The closing hint to revert is given where it works: while the embedded AWS stays up
        assert any("in another shell after the export line below: deputy-guard revert" in seen for seen in lines)
        api = next(word for word in lines[-1].split() if word.startswith("http://127.0.0.1:"))
        request = urllib.request.Request(
            api, data=json.dumps({"dry_run": True}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["complete"] is True
        process.terminate()
        assert process.wait(timeout=30) == 0
        assert "stopping" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_demo_organization_fixes_a_member_skips_an_outsider_and_reports_the_broken_account(
    enforce_summary: dict[str, Any],
) -> None:
    org = enforce_summary["organization"]
    member = org["members"][0]
    # An event from a member account is fixed in that account, pinned to it
    assert org["member_event"] == {"account": member, "action": "fixed", "pinned_account": member}
    # An account outside the organization is skipped
    assert org["outsider_event"]["reason"] == "out_of_scope"
    # The sweep reached every account through SQS; the broken one failed twice and went to the dead-letter queue
    sweep = org["sweep"]
    assert set(sweep) == {org["management"], *org["members"]}
    assert sweep[org["broken"]]["status"] == "failed" and sweep[org["broken"]]["attempts"] == 2
    assert all(entry["status"] == "ok" for account, entry in sweep.items() if account != org["broken"])
    assert org["dead_letters"] == [org["broken"]]
    assert org["rest"] == {"member": "compliant", "outsider": 400}


def test_demo_guards_every_service_in_its_last_step(enforce_summary: dict[str, Any]) -> None:
    # With DEPUTY_GUARD_SERVICES=all in enforce mode, on the embedded AWS:
    services = enforce_summary["services"]
    account = enforce_summary["account"]
    # a Scheduler role and a VPC Flow Logs role are fixed with their own service's ARN
    assert services["nightly-schedule-role"]["action"] == "fixed"
    assert services["nightly-schedule-role"]["source_arns"] == [f"arn:aws:scheduler:*:{account}:*"]
    assert services["vpc-flow-logs-role"]["source_arns"] == [f"arn:aws:ec2:*:{account}:*"]
    # a CloudTrail role is only notified, its trust policy unchanged
    trail = services["trail-to-logs-role"]
    assert (trail["action"], trail["auto_fix"], trail["source_arns"]) == ("notified", False, [])
    # EC2, Secrets Manager and Elastic Transcoder roles are never touched and their events cost no IAM call
    for name in ("ci-runner-ec2", "secrets-rotation-role", "transcoder-role"):
        entry = services[name]
        assert (entry["status"], entry["reason"], entry["iam_calls"], entry["source_arns"]) == (
            "skipped",
            "no_guarded_principal",
            0,
            [],
        ), name
    # and one statement trusting Step Functions, Scheduler and EC2 gives each pinned service its own pins
    assert services["ops-mixed-role"]["source_arns"] == [
        f"arn:aws:states:*:{account}:*",
        f"arn:aws:scheduler:*:{account}:*",
    ]
