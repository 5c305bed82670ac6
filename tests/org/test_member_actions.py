"""`deputy-guard remediate|revert|exempt ROLE --account ID`, run as a user runs them, in a member account.

The embedded organization: the management account (the caller's, where the central audit table lives), a
member with deputy-guard-member, and a member without it. Every command is a subprocess over real HTTP.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext
from deputy_guard.embedded import EmbeddedAws
from deputy_guard.embedded_org import Organization, member_client, member_iam, seed_organization
from tests.documents import BACKDOOR
from tests.org.conftest import CLI, TABLE, VULNERABLE

pytestmark = pytest.mark.e2e

ROLE = "orders-sfn"


@dataclass
class Members:
    server: EmbeddedAws
    org: Organization

    @property
    def member(self) -> str:
        return self.org.members[0]

    @property
    def broken(self) -> str:
        return self.org.without_member_role[0]

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_ENDPOINT_URL": self.server.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DEPUTY_GUARD_TABLE": TABLE,
            "DEPUTY_GUARD_SIGNING_KEY": DEFAULT_SIGNING_KEY_ALIAS,
            **extra,
        }
        return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False)

    def role(self, account: str, name: str = ROLE) -> dict[str, Any]:
        found = member_iam(account).get_role(RoleName=name)["Role"]
        document = found["AssumeRolePolicyDocument"]
        tags = {tag["Key"]: tag["Value"] for tag in member_iam(account).list_role_tags(RoleName=name)["Tags"]}
        return {"trust": json.loads(document) if isinstance(document, str) else document, "tags": tags}

    def central_records(self, account: str, name: str = ROLE) -> list[dict[str, Any]]:
        """The role's audit records in the caller's (the management account's) table, oldest first."""
        table = boto3.client("dynamodb", region_name="us-east-1")
        items = table.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"role#arn:aws:iam::{account}:role/{name}"}},
        )["Items"]
        return [{key: next(iter(value.values())) for key, value in item.items()} for item in items]


@pytest.fixture
def members(org_server: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Members]:
    """A fresh organization: one member with the member role and a vulnerable role, one without the member role."""
    urllib.request.urlopen(urllib.request.Request(f"{org_server.url}/moto-api/reset", method="POST"), timeout=10)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", org_server.url)
    org = seed_organization(2, broken=[1])
    member_iam(org.members[0]).create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(VULNERABLE))
    world = Members(org_server, org)
    assert world.run("setup").returncode == 0  # the central table, in the caller's (management) account
    yield world


def test_remediate_then_revert_in_a_member_account_with_the_records_in_the_central_table(members: Members) -> None:
    # When the caller (the central account) remediates the member's role
    fixed = members.run("remediate", ROLE, "--account", members.member)
    # Then the role is fixed in the member account, pinned to that account
    assert fixed.returncode == 0, fixed.stderr
    assert f"in account {members.member}" in fixed.stdout and "-> fixed" in fixed.stdout
    statement = members.role(members.member)["trust"]["Statement"][0]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == members.member
    # When it is reverted the same way
    reverted = members.run("revert", ROLE, "--account", members.member)
    # Then the original is back, the role exempt, and both records are in the central table, with the member
    assert reverted.returncode == 0, reverted.stderr
    after = members.role(members.member)
    assert after["trust"] == VULNERABLE and after["tags"]["deputy-guard:mode"] == "exempt"
    records = members.central_records(members.member)
    assert sorted((r["kind"], r["status"], r["account"]) for r in records) == [
        ("fix", "reverted", members.member),
        ("revert", "applied", members.member),
    ]
    assert all(r["actor"].startswith(f"arn:aws:sts::{members.org.management}:") for r in records)
    assert all(r.get("signature") for r in records)  # signed, as the bot signs: the revert verified the fix's
    # And no table was made in the member account
    assert member_client(members.member, "dynamodb").list_tables()["TableNames"] == []


def test_a_forced_revert_in_a_member_account_refuses_a_forged_record_and_writes_nothing(members: Members) -> None:
    # Given the member's role pinned by its owner, and a self-consistent forged record in the central table whose
    # "original" lets another account assume the role (written as anyone with dynamodb:PutItem could)
    member = members.member
    pinned = evaluate(VULNERABLE, RoleContext(account_id=member)).fixed_policy
    forged = evaluate(BACKDOOR, RoleContext(account_id=member)).fixed_policy
    assert pinned is not None and forged is not None
    member_iam(member).update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(pinned))
    arn = f"arn:aws:iam::{member}:role/{ROLE}"
    now = "2026-12-01T10:00:00.000000+00:00"
    fields = {"pk": f"role#{arn}", "sk": f"change#{now}#forged2", "change_id": "forged2", "role_arn": arn}
    fields.update(role_name=ROLE, account=member, kind="fix", status="applied", created_at=now)
    fields.update(before=json.dumps(BACKDOOR), after=json.dumps(forged))
    table = boto3.client("dynamodb", region_name="us-east-1")
    table.put_item(TableName=TABLE, Item={key: {"S": value} for key, value in fields.items()})
    # When the operator runs the break-glass revert there, with their own credentials
    result = members.run("revert", ROLE, "--account", member, "--force")
    # Then it is refused, naming the record: the role keeps its pins, gains no tag, and no record is added
    assert result.returncode == 1, result.stderr
    assert "forged2" in result.stderr and "unsigned" in result.stderr and "restored" not in result.stdout
    assert members.role(member) == {"trust": pinned, "tags": {}}
    assert [r["change_id"] for r in members.central_records(member)] == ["forged2"]


def test_remediate_dry_run_changes_nothing_and_writes_no_record(members: Members) -> None:
    shown = members.run("remediate", ROLE, "--account", members.member, "--dry-run", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["action"], report["account"]) == ("would_fix", members.member)
    assert members.role(members.member)["trust"] == VULNERABLE
    assert members.central_records(members.member) == []


def test_exempt_tags_the_member_role_as_the_slack_button_does_and_remove_takes_it_off(members: Members) -> None:
    # When the caller exempts the member's role for 10 days
    done = members.run("exempt", ROLE, "--account", members.member, "--days", "10", "--reason", "replaced next sprint")
    # Then the role carries the three tags the Slack button sets, lasting 10 days
    assert done.returncode == 0, done.stderr
    until = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    tags = members.role(members.member)["tags"]
    assert set(tags) == {"deputy-guard:mode", "deputy-guard:reason", "deputy-guard:exempt-until"}
    assert (tags["deputy-guard:mode"], tags["deputy-guard:exempt-until"]) == ("exempt", until)
    assert "replaced next sprint" in tags["deputy-guard:reason"]
    # And the central table holds the exemption, by the caller, for the member account
    (record,) = members.central_records(members.member)
    assert (record["kind"], record["status"], record["account"]) == ("exempt", "applied", members.member)
    assert "replaced next sprint" in record["reason"] and record["actor"].startswith("arn:aws:sts::")
    # And a scan of that account now reports the role exempt
    scan = members.run("scan", "--accounts", members.member, "--format", "json")
    (entry,) = json.loads(scan.stdout)["accounts"]
    assert {r["role_name"]: r["action"] for r in entry["results"]}[ROLE] == "exempt"
    # When the exemption is removed
    removed = members.run("exempt", ROLE, "--account", members.member, "--remove")
    # Then the tags are gone, and the removal is recorded too
    assert removed.returncode == 0, removed.stderr
    assert members.role(members.member)["tags"] == {}
    assert sorted(r["kind"] for r in members.central_records(members.member)) == ["exempt", "unexempt"]


def test_a_missing_central_table_is_a_clear_error_that_does_not_send_you_to_set_up_a_member(
    members: Members,
) -> None:
    result = members.run("revert", ROLE, "--account", members.member, DEPUTY_GUARD_TABLE="no-such-table")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "central audit table 'no-such-table' does not exist" in result.stderr
    assert "deputy-guard setup" not in result.stderr
    assert "no-such-table" not in boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]
    assert member_client(members.member, "dynamodb").list_tables()["TableNames"] == []


@pytest.mark.parametrize("command", [["revert", ROLE], ["remediate", ROLE], ["exempt", ROLE, "--reason", "r"]])
def test_an_account_without_the_member_role_is_one_line_naming_the_role(members: Members, command: list[str]) -> None:
    result = members.run(*command, "--account", members.broken)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (last,) = result.stderr.strip().splitlines()  # one line: no log record besides it
    assert f"cannot act in account {members.broken}" in last
    assert f"arn:aws:iam::{members.broken}:role/deputy-guard-member" in last and "AccessDenied" in last


def test_a_role_of_the_member_account_is_unknown_to_the_central_account_without_account(members: Members) -> None:
    result = members.run("revert", ROLE)
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["revert", ROLE, "--member-role", "other"], "--member-role is used with --account only"),
        (["exempt", ROLE, "--account", "12345", "--reason", "r"], "12-digit"),
        (["exempt", ROLE], "--reason is required"),
        (["exempt", ROLE, "--days", "0", "--reason", "r"], "between 1 and"),
        (["remediate", ROLE, "--account", "111122223333", "--member-role", "bad name"], "role name"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(members: Members, args: list[str], message: str) -> None:
    result = members.run(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
