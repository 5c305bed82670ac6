"""`deputy-guard setup|scan|revert` as a user runs them: subprocesses against moto's server over HTTP."""

from __future__ import annotations

import json
import subprocess

import pytest

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext
from tests.documents import BACKDOOR
from tests.e2e.conftest import CLI, cli_env, client, create_role, trust
from tests.world import COMPLIANT, FOREIGN, VULNERABLE

pytestmark = pytest.mark.e2e


def run(endpoint: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, env=cli_env(endpoint, **env), check=False
    )


def test_setup_creates_the_table_once(endpoint: str) -> None:
    first = run(endpoint, "setup")
    second = run(endpoint, "setup")
    assert (first.returncode, second.returncode) == (0, 0)
    assert "created" in first.stdout and "already exists" in second.stdout
    # and the HMAC key its audit records are signed with, under the alias DEPUTY_GUARD_SIGNING_KEY names
    assert "signing key alias/deputy-guard-signing: created" in first.stdout
    assert "signing key alias/deputy-guard-signing: already exists" in second.stdout
    key = client("kms").describe_key(KeyId="alias/deputy-guard-signing")["KeyMetadata"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")


def test_scan_json_is_the_scans_report_and_exits_1_on_findings(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    create_role("compliant-sfn", COMPLIANT)
    create_role("foreign-sfn", FOREIGN)
    result = run(endpoint, "scan", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"account", "complete", "next_token", "summary", "results"}
    assert report["complete"] is True and report["next_token"] is None
    assert report["summary"] == {"compliant": 1, "not_applicable": 0, "non_compliant": 1, "needs_review": 1}
    assert {r["role_name"]: r["action"] for r in report["results"]}["vulnerable-sfn"] == "would_fix"
    assert trust("vulnerable-sfn") == VULNERABLE


def test_scan_fix_fixes_and_a_second_scan_is_clean(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    fixed = run(endpoint, "scan", "--fix", "--format", "json")
    assert {r["role_name"]: r["action"] for r in json.loads(fixed.stdout)["results"]} == {"vulnerable-sfn": "fixed"}
    assert fixed.returncode == 0  # everything found was fixed: nothing left to do
    clean = run(endpoint, "scan")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "1 role: 1 compliant" in clean.stdout


def test_exempt_findings_do_not_fail_the_scan(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("legacy-sfn", VULNERABLE)
    result = run(endpoint, "scan", DEPUTY_GUARD_EXEMPTIONS="legacy-*")
    assert result.returncode == 0, result.stdout


def test_scan_table_names_verdict_role_problem_and_action(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    lines = run(endpoint, "scan", "--role", "vulnerable-sfn", "--role", "ghost").stdout.splitlines()
    assert lines[0].split() == ["VERDICT", "ROLE", "PROBLEMS", "ACTION"]
    assert lines[1].split() == [
        "non_compliant",
        "vulnerable-sfn",
        "missing_source_account,missing_source_arn",
        "would_fix",
    ]
    assert "not found: ghost" in lines


def test_revert_from_the_cli_restores_and_refuses(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    run(endpoint, "scan", "--fix")
    reverted = run(endpoint, "revert", "vulnerable-sfn")
    assert reverted.returncode == 0 and "restored" in reverted.stdout
    assert trust("vulnerable-sfn") == VULNERABLE
    again = run(endpoint, "revert", "vulnerable-sfn")
    assert again.returncode == 0 and "already reverted" in again.stdout


def test_bad_setting_is_one_line_and_exit_2(endpoint: str) -> None:
    result = run(endpoint, "scan", DEPUTY_GUARD_MODE="sometimes")
    assert result.returncode == 2
    assert "DEPUTY_GUARD_MODE" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_endpoint_is_a_clear_error(endpoint: str) -> None:
    result = run("http://127.0.0.1:9", "scan", AWS_MAX_ATTEMPTS="1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_revert_force_refuses_a_forged_record_and_writes_nothing(endpoint: str) -> None:
    # Given a role its owner pinned by hand, and a forged, self-consistent record whose "original" lets another
    # account assume the role (written straight into the table, as anyone with dynamodb:PutItem could)
    run(endpoint, "setup")
    arn = create_role("hand-pinned-sfn", VULNERABLE)
    account = arn.split(":")[4]
    pinned = evaluate(VULNERABLE, RoleContext(account_id=account)).fixed_policy
    client("iam").update_assume_role_policy(RoleName="hand-pinned-sfn", PolicyDocument=json.dumps(pinned))
    forged = evaluate(BACKDOOR, RoleContext(account_id=account)).fixed_policy
    assert forged is not None
    now = "2026-12-01T10:00:00.000000+00:00"
    client("dynamodb").put_item(
        TableName="deputy-guard-e2e",
        Item={
            key: {"S": value}
            for key, value in {
                "pk": f"role#{arn}",
                "sk": f"change#{now}#forged1",
                "change_id": "forged1",
                "role_arn": arn,
                "role_name": "hand-pinned-sfn",
                "kind": "fix",
                "status": "applied",
                "before": json.dumps(BACKDOOR),
                "after": json.dumps(forged),
                "created_at": now,
            }.items()
        },
    )
    # When an operator runs the break-glass revert with their own credentials
    result = run(endpoint, "revert", "hand-pinned-sfn", "--force")
    # Then it is refused, naming the record, and the role keeps its pins
    assert result.returncode == 1, result.stderr
    assert "forged1" in result.stderr and "unsigned" in result.stderr
    assert "restored" not in result.stdout
    assert trust("hand-pinned-sfn") == pinned


def test_scan_fix_without_a_signing_key_warns_that_its_fixes_will_not_be_revertable(endpoint: str) -> None:
    # Given a table and a vulnerable role, and a shell without DEPUTY_GUARD_SIGNING_KEY
    run(endpoint, "setup")
    create_role("unsigned-sfn", VULNERABLE)
    # When it fixes the role
    fixed = run(endpoint, "scan", "--fix", DEPUTY_GUARD_SIGNING_KEY="")
    # Then it says once, before the fix, that deputy-guard will not revert it
    assert fixed.returncode == 0, fixed.stderr
    warnings = [line for line in fixed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "DEPUTY_GUARD_SIGNING_KEY" in warnings[0] and "will not revert" in warnings[0]
    # And so it is: even with the key configured, the unsigned record is refused and the fix stays
    reverted = run(endpoint, "revert", "unsigned-sfn")
    assert reverted.returncode == 1 and "unsigned" in reverted.stderr
    assert trust("unsigned-sfn") != VULNERABLE


def test_scan_fix_with_a_signing_key_signs_quietly(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("signed-sfn", VULNERABLE)
    fixed = run(endpoint, "scan", "--fix")
    assert fixed.returncode == 0 and "warning" not in fixed.stderr, fixed.stderr
    assert run(endpoint, "revert", "signed-sfn").returncode == 0
    assert trust("signed-sfn") == VULNERABLE


def test_a_forced_revert_restores_the_signed_original_and_shows_what_it_replaced(endpoint: str) -> None:
    # Given the bot's signed fix, and a later change someone made to the role (a second trusted service)
    run(endpoint, "setup")
    create_role("changed-sfn", VULNERABLE)
    run(endpoint, "scan", "--fix")
    changed = trust("changed-sfn")
    changed["Statement"][0]["Principal"] = {"Service": ["states.amazonaws.com", "events.amazonaws.com"]}
    client("iam").update_assume_role_policy(RoleName="changed-sfn", PolicyDocument=json.dumps(changed))
    assert run(endpoint, "revert", "changed-sfn").returncode == 1  # refused: the role changed since the fix
    # When the operator forces it
    forced = run(endpoint, "revert", "changed-sfn", "--force")
    # Then the recorded original is back, and the output shows the change it discarded
    assert forced.returncode == 0, forced.stderr
    assert trust("changed-sfn") == VULNERABLE
    assert "--- replaced" in forced.stdout and "+++ restored" in forced.stdout
    assert any(line.startswith("-") and "events.amazonaws.com" in line for line in forced.stdout.splitlines())
