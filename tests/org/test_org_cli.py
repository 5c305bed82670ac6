"""`deputy-guard scan --accounts`, run as a user runs it, over several member accounts of the embedded AWS."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.org.conftest import CLI, VULNERABLE, OrgWorld

pytestmark = pytest.mark.e2e


def scan(world: OrgWorld, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "scan", *args], capture_output=True, text=True, timeout=180, env=world.cli_env(**env), check=False
    )


def test_org_scan_reports_every_account_and_the_broken_one_with_its_error(org_world: OrgWorld) -> None:
    # When the whole organization is scanned, 4 accounts at a time
    result = scan(org_world, "--accounts", "org", "--concurrency", "4", "--format", "json")
    # Then every account has its entry, in the organization's order, the bot's own first
    report = json.loads(result.stdout)
    assert report["schema_version"] == "1"
    entries = {entry["account"]: entry for entry in report["accounts"]}
    assert report["accounts"][0]["account"] == org_world.org.management
    assert set(entries) == set(org_world.org.accounts)
    for account in org_world.healthy:
        entry = entries[account]
        assert (entry["status"], entry["complete"]) == ("ok", True)
        assert {r["role_name"]: r["verdict"] for r in entry["results"]}["orders-sfn"] == "non_compliant"
        assert entry["summary"]["non_compliant"] == 1
    # And the account without the member role is reported, not fatal
    broken = entries[org_world.broken]
    assert broken["status"] == "failed" and broken["complete"] is False and broken["results"] == []
    assert "deputy-guard-member" in broken["error"] and "AccessDenied" in broken["error"]
    assert org_world.broken in result.stderr
    # And the summary adds up every account; an account not scanned makes the exit status 2
    assert report["summary"]["non_compliant"] == len(org_world.healthy)
    assert result.returncode == 2


def test_listed_accounts_only_and_findings_exit_1(org_world: OrgWorld) -> None:
    listed = org_world.healthy[:3]
    result = scan(org_world, "--accounts", ",".join(listed), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [e["account"] for e in report["accounts"]] == listed


def test_fix_across_accounts_then_a_clean_rescan_exits_0(org_world: OrgWorld) -> None:
    listed = ",".join(org_world.healthy[:4])
    fixed = scan(org_world, "--accounts", listed, "--fix", "--format", "json")
    assert fixed.returncode == 0, fixed.stderr  # every finding fixed: nothing left to act on
    actions = {r["action"] for e in json.loads(fixed.stdout)["accounts"] for r in e["results"]}
    assert "fixed" in actions
    again = scan(org_world, "--accounts", listed)
    assert again.returncode == 0
    for account in org_world.healthy[:4]:
        assert f"account {account}:" in again.stdout
    assert "4 accounts (0 failed)" in again.stdout


def test_a_fix_across_accounts_without_a_signing_key_warns_once_and_a_dry_run_does_not(org_world: OrgWorld) -> None:
    listed = org_world.healthy[0]
    dry = scan(org_world, "--accounts", listed, DEPUTY_GUARD_SIGNING_KEY="")
    assert "warning" not in dry.stderr, dry.stderr
    fixed = scan(org_world, "--accounts", listed, "--fix", DEPUTY_GUARD_SIGNING_KEY="")
    assert fixed.returncode == 0, fixed.stderr
    (warning,) = [line for line in fixed.stderr.splitlines() if "warning" in line]
    assert "DEPUTY_GUARD_SIGNING_KEY is not set" in warning and "will not revert" in warning


def test_a_fix_across_accounts_without_the_central_table_is_one_line_and_changes_nothing(org_world: OrgWorld) -> None:
    listed = org_world.healthy[0]
    fixed = scan(org_world, "--accounts", listed, "--fix", DEPUTY_GUARD_TABLE="no-such-table")
    assert fixed.returncode == 2 and fixed.stdout == ""
    (line,) = fixed.stderr.strip().splitlines()
    assert "audit table 'no-such-table' does not exist" in line
    assert org_world.trust(listed, "orders-sfn") == VULNERABLE


def test_a_wrong_member_role_fails_every_account_without_a_traceback(org_world: OrgWorld) -> None:
    result = scan(org_world, "--accounts", ",".join(org_world.healthy[:2]), "--member-role", "no-such-role")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stdout.count("FAILED") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "12345"], "12-digit"),
        (["--accounts", "org", "--member-role", "bad name"], "role name"),
        (["--accounts", "org", "--concurrency", "0"], "between 1 and"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(org_world: OrgWorld, args: list[str], message: str) -> None:
    result = scan(org_world, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
