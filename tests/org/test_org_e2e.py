"""One deployment, eleven member accounts, over real HTTP: events, scope, the SQS fan-out, faults, REST."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.service.accounts import AccountUnavailable
from deputy_guard.demo_data import cloudtrail_event
from deputy_guard.embedded_org import SqsEventSource, dead_letters, member_iam
from tests.org.conftest import VULNERABLE, OrgWorld, sqs

pytestmark = pytest.mark.e2e

OUTSIDER = "210987654321"


def _org_scope(monkeypatch: pytest.MonkeyPatch, world: OrgWorld, accounts: str = "org") -> None:
    monkeypatch.setenv("DEPUTY_GUARD_ACCOUNTS", accounts)
    monkeypatch.setenv("DEPUTY_GUARD_WORK_QUEUE_URL", world.queue)


def _scheduled(account: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5c1b2f3e-0000-4000-8000-000000000001",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": "2026-11-20T09:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }


def _pinned(trust: dict[str, Any]) -> str | None:
    condition = trust["Statement"][0].get("Condition", {})
    return condition.get("StringEquals", {}).get("aws:SourceAccount")


# --- events -----------------------------------------------------------------------------------------


def test_an_event_from_each_member_is_fixed_in_that_member(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the organization in scope
    _org_scope(monkeypatch, org_world)
    for account in org_world.healthy:
        # When CloudTrail reports a vulnerable role created in that member
        event = cloudtrail_event(account, "CreateRole", "orders-sfn", "alice", VULNERABLE)
        result = lambda_client.lambda_.invoke("on_iam_event", event).payload
        # Then the role is fixed there, pinned to that member's own account
        assert result["action"] == "fixed", result
        assert result["role_arn"] == f"arn:aws:iam::{account}:role/orders-sfn"
        assert _pinned(org_world.trust(account, "orders-sfn")) == account


def test_the_audit_record_and_the_notices_carry_the_member_account(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from chalicelib.runtime import container

    # Given an SNS topic read through a queue, and the organization in scope
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.create_topic(Name="deputy-guard-org")["TopicArn"]
    inbox = sqs().create_queue(QueueName="deputy-guard-org-inbox")["QueueUrl"]
    inbox_arn = sqs().get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    monkeypatch.setenv("DEPUTY_GUARD_SNS_TOPIC_ARN", topic)
    _org_scope(monkeypatch, org_world)
    member = org_world.healthy[3]
    # When a member's role is fixed from its event
    event = cloudtrail_event(member, "CreateRole", "orders-sfn", "alice", VULNERABLE)
    lambda_client.lambda_.invoke("on_iam_event", event)
    # Then the audit record names the member account (in the central table)
    records = container.deps().audit.history(f"arn:aws:iam::{member}:role/orders-sfn")
    assert [r.status.value for r in records] == ["applied"]
    items = container.deps().audit._table.query(f"role#arn:aws:iam::{member}:role/orders-sfn", sk_prefix="change#")
    assert items[0]["account"] == member
    # And the SNS message carries it as the attribute subscribers filter on
    message = json.loads(sqs().receive_message(QueueUrl=inbox, WaitTimeSeconds=1)["Messages"][0]["Body"])
    assert message["MessageAttributes"]["account"]["Value"] == member
    assert json.loads(message["Message"])["account"] == member
    # And its revert command acts in that account from the central one
    assert json.loads(message["Message"])["revert_command"] == f"deputy-guard revert orders-sfn --account {member}"


def test_an_event_from_an_account_out_of_scope_makes_no_aws_call(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a list scope of two members (the bot's own role known from its setting)
    listed = org_world.healthy[:2]
    _org_scope(monkeypatch, org_world, ",".join(listed))
    before = org_world.server.requests
    # When events arrive from a third member and from outside the organization
    for account in (org_world.healthy[2], OUTSIDER):
        event = cloudtrail_event(account, "CreateRole", "orders-sfn", "alice", VULNERABLE)
        result = lambda_client.lambda_.invoke("on_iam_event", event).payload
        # Then each is skipped as out of scope
        assert result == {"status": "skipped", "reason": "out_of_scope", "event_id": event["id"], "account": account}
    # And nothing was asked of AWS at all
    assert org_world.server.requests == before
    # While a listed member is still handled
    event = cloudtrail_event(listed[1], "CreateRole", "orders-sfn", "alice", VULNERABLE)
    assert lambda_client.lambda_.invoke("on_iam_event", event).payload["action"] == "fixed"


def test_an_event_in_an_account_whose_member_role_is_missing_fails_loudly(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the organization in scope and a member without deputy-guard-member
    _org_scope(monkeypatch, org_world)
    event = cloudtrail_event(org_world.broken, "CreateRole", "orders-sfn", "alice", VULNERABLE)
    # When its event arrives, Then the invocation fails (EventBridge retries it, then its dead-letter queue keeps it)
    with pytest.raises(AccountUnavailable, match="AccessDenied"):
        lambda_client.lambda_.invoke("on_iam_event", event)


def test_the_bots_own_fix_in_a_member_comes_back_as_a_no_op(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world)
    member = org_world.healthy[0]
    # Given an UpdateAssumeRolePolicy made by the member role's session (the bot's own fix)
    event = member_role_event(member)
    # When it arrives, Then it is recognised as the bot's own call
    assert lambda_client.lambda_.invoke("on_iam_event", event).payload["reason"] == "own_event"


def member_role_event(account: str, session: str = "deputy-guard") -> dict[str, Any]:
    """A vulnerable UpdateAssumeRolePolicy of orders-sfn, made by a session of a role named deputy-guard-member."""
    event = cloudtrail_event(account, "UpdateAssumeRolePolicy", "orders-sfn", "alice", VULNERABLE)
    identity = event["detail"]["userIdentity"]
    identity["arn"] = f"arn:aws:sts::{account}:assumed-role/deputy-guard-member/{session}"
    identity["sessionContext"]["sessionIssuer"]["arn"] = f"arn:aws:iam::{account}:role/deputy-guard-member"
    return event


def test_a_role_named_like_the_member_role_in_the_central_account_is_not_the_bot(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world)
    central = org_world.org.management
    # Given someone's own role named deputy-guard-member in the bot's account, used to unpin a role there
    iam = boto3.client("iam", region_name="us-east-1")  # the bot's own account
    iam.create_role(RoleName="orders-sfn", AssumeRolePolicyDocument=json.dumps(VULNERABLE))
    # When its event arrives, even under the bot's session name
    answer = lambda_client.lambda_.invoke("on_iam_event", member_role_event(central)).payload
    # Then it is no echo: the role is handled (fixed in enforce mode)
    assert answer.get("reason") != "own_event"
    assert answer["action"] == "fixed"
    assert _pinned(iam.get_role(RoleName="orders-sfn")["Role"]["AssumeRolePolicyDocument"]) == central


def test_a_member_role_session_the_bot_did_not_start_is_not_an_echo(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world)
    member = org_world.healthy[1]
    # Given a session of the member role under another session name than the bot's
    answer = lambda_client.lambda_.invoke("on_iam_event", member_role_event(member, "mallory")).payload
    # Then the change is handled like anyone's
    assert answer.get("reason") != "own_event" and answer["action"] == "fixed"


def test_a_member_role_in_an_account_the_bot_cannot_act_in_is_not_an_echo(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world)
    # Given an in-scope account without the member stack, and a role someone named deputy-guard-member there
    event = member_role_event(org_world.broken)
    # When its event arrives / Then it is not skipped as an echo: it fails loudly (retried, then dead-lettered)
    with pytest.raises(AccountUnavailable):
        lambda_client.lambda_.invoke("on_iam_event", event)


# --- the sweep, fanned out --------------------------------------------------------------------------


def test_the_sweep_fans_out_through_sqs_and_a_broken_account_never_stops_the_others(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world)
    # When the scheduled sweep runs
    fanned = lambda_client.lambda_.invoke("sweep", _scheduled(org_world.org.management)).payload
    # Then it sends one message per account (the management account and the eleven members)
    assert fanned["enqueued"] == len(org_world.org.accounts) == 12
    # And the messages, delivered by SQS to scan_account at most 3 at once
    source = SqsEventSource(
        org_world.queue, lambda e: lambda_client.lambda_.invoke("scan_account", e).payload, max_concurrency=3
    )
    deliveries = source.drain(timeout=60)
    assert 1 < source.peak_concurrency <= 3
    swept = {json.loads(d.body)["account"] for d in deliveries if d.ok}
    failed = [json.loads(d.body)["account"] for d in deliveries if not d.ok]
    # sweep every healthy account, whose vulnerable role is now fixed,
    assert swept == {org_world.org.management, *org_world.healthy}
    for account in org_world.healthy:
        assert _pinned(org_world.trust(account, "orders-sfn")) == account
    # while the broken account fails on each delivery and SQS moves it to the dead-letter queue
    assert failed == [org_world.broken, org_world.broken]
    assert all("AccessDenied" in (d.error or "") for d in deliveries if not d.ok)
    assert dead_letters(org_world.dlq) == [{"account": org_world.broken}]


def test_an_account_cut_short_keeps_its_cursor_and_goes_on_from_it(
    org_world: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.runtime import container
    from chalicelib.runtime.organization import work_queue
    from chalicelib.service.fanout import sweep_account

    _org_scope(monkeypatch, org_world)
    monkeypatch.setenv("DEPUTY_GUARD_MODE", "dry-run")
    member = org_world.healthy[0]
    iam = member_iam(member)
    for index in range(6):
        iam.create_role(RoleName=f"batch-{index}-sfn", AssumeRolePolicyDocument=json.dumps(VULNERABLE))
    directory = container.accounts()
    # When a sweep of the member runs out of time after its first role
    first = sweep_account(json.dumps({"account": member}), directory, work_queue(), org_world.queue, budget_seconds=0)
    # Then it saves the member's own cursor and queues the account again
    assert first["status"] == "partial" and first["continued"] is True
    cursor = directory.deps_for(member).cursor
    assert cursor is not None and cursor.load() is not None
    assert container.deps().cursor.load() is None  # the single-account cursor is untouched
    again = sqs().receive_message(QueueUrl=org_world.queue, WaitTimeSeconds=1)["Messages"][0]
    assert json.loads(again["Body"]) == {"account": member, "continuation": 1}
    # And the next delivery resumes from that cursor and finishes the account
    second = sweep_account(again["Body"], directory, work_queue(), org_world.queue, budget_seconds=None)
    assert second["status"] == "complete" and second["resumed"] is True
    # Every role exactly once: 8 seeded, OrganizationAccountAccessRole and deputy-guard-member
    assert sum(first["summary"].values()) + sum(second["summary"].values()) == 10
    assert cursor.load() is None


def test_a_malformed_or_foreign_work_message_is_dropped_not_retried(
    org_world: OrgWorld, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_scope(monkeypatch, org_world, ",".join(org_world.healthy[:1]))
    for body, expected in (("not json", "dropped"), (json.dumps({"account": OUTSIDER}), "skipped")):
        event = {"Records": [{"messageId": "m", "receiptHandle": "r", "body": body, "attributes": {}}]}
        result = lambda_client.lambda_.invoke("scan_account", event).payload
        assert result["results"][0]["status"] == expected


# --- REST -------------------------------------------------------------------------------------------


def test_the_rest_routes_take_an_account(org_world: OrgWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error
    import urllib.request

    import app as app_module
    from deputy_guard.embedded import LocalApi

    _org_scope(monkeypatch, org_world)
    member = org_world.healthy[5]
    api = LocalApi(app_module.app).start()

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{api.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        # GET a member's role: evaluated in that account
        status, body = call("GET", f"/roles/orders-sfn?account={member}")
        assert (status, body["verdict"], body["role_arn"].split(":")[4]) == (200, "non_compliant", member)
        # POST /scans for one member: its report
        status, report = call("POST", "/scans", {"dry_run": True, "account": member})
        assert status == 200 and report["account"] == member
        assert {r["role_name"] for r in report["results"]} >= {"orders-sfn", "thumbnails"}
        # remediate in that member
        status, body = call("POST", f"/roles/orders-sfn/remediate?account={member}", {})
        assert (status, body["action"]) == (200, "fixed")
        assert _pinned(org_world.trust(member, "orders-sfn")) == member
        # revert in that member: the recorded original comes back
        status, body = call("POST", f"/roles/orders-sfn/revert?account={member}", {})
        assert (status, body["status"]) == (200, "reverted")
        assert _pinned(org_world.trust(member, "orders-sfn")) is None
        # an account out of scope, or not an account id: 400 with a message
        for query in (f"?account={OUTSIDER}", "?account=12345"):
            status, body = call("GET", f"/roles/orders-sfn{query}")
            assert status == 400 and body["Message"], body
        status, body = call("POST", "/scans", {"dry_run": True, "account": OUTSIDER})
        assert status == 400 and "not in deputy-guard's scope" in body["Message"]
        # a member whose role cannot be assumed: 502 naming the account
        status, body = call("GET", f"/roles/orders-sfn?account={org_world.broken}")
        assert status == 502 and org_world.broken in body["Message"]
    finally:
        api.stop()
    assert member_iam(member).get_role(RoleName="orders-sfn")
