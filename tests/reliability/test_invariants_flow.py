"""A representative day, end to end, with the suite's invariants checked across all of it.

Seven roles; CloudTrail events through the real Lambda handler; a scheduled sweep; REST scans, checks,
a remediation and a revert; SNS and a Slack webhook (a recognisable secret in its URL) that stumbles.
Across all of it:

* every trust-policy write was recorded first and only narrowed access (the write guard; the revert,
  which restores the wider original, is exempt from narrowing and must be recorded first instead);
* every decision is in the log;
* every change is in the audit trail;
* the webhook URL's secret reaches no log line, no exception text, no response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from chalice.test import Client

import app as app_module
from chalicelib.runtime import container
from chalicelib.runtime.wiring import build_deps
from deputy_guard.embedded import SlackStandIn
from tests.reliability.conftest import Account
from tests.world import COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, load_event

MakeAccount = Callable[..., Account]
SECRET = "XXdeputyGuardWebhookSecretXX"
TOPIC = "deputy-guard-owners"
JSON = {"Content-Type": "application/json"}
MIXED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}
SCHEDULED = {
    "version": "0",
    "id": "sweep-1",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "111122223333",
    "time": "2026-11-29T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}
ROLES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "order-pipeline-sfn": (VULNERABLE, {"owner": "payments-team"}),
    "mixed-sfn": (MIXED, {"team": "data"}),
    "foreign-sfn": (FOREIGN, {}),
    "compliant-sfn": (COMPLIANT, {}),
    "exempt-sfn": (VULNERABLE, {"deputy-guard:mode": "exempt"}),
    "cfn-sfn": (VULNERABLE, {"aws:cloudformation:stack-name": "orders"}),
    "lambda-only": (LAMBDA_ONLY, {}),
}
EVENTS = [
    load_event("CreateRole-states-vulnerable.json"),
    load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json"),
    load_event("CreateRole-lambda-irrelevant.json"),
    {"detail": "garbage"},
]


@dataclass
class Day:
    acct: Account
    slack: SlackStandIn
    events: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] = field(default_factory=dict)
    responses: dict[str, tuple[int, Any]] = field(default_factory=dict)
    log_records: list[logging.LogRecord] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn(path=f"/services/T0DEPUTY/B0GUARD/{SECRET}").start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def day(
    account: MakeAccount, slack: SlackStandIn, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[Day]:
    # Given the account, wired as in production: SNS topic, Slack webhook from the settings, ledger
    topic_arn = f"arn:aws:sns:us-east-1:111122223333:{TOPIC}"
    acct = account(mode="enforce", idempotent=False, sns_topic_arn=topic_arn, slack_webhook_url=slack.url)
    boto3.client("sns", region_name="us-east-1").create_topic(Name=TOPIC)
    acct.deps.notifier = build_deps(acct.deps.settings, logger=acct.logs, metrics=acct.deps.metrics).notifier
    for name, (document, tags) in ROLES.items():
        acct.create_role(name, document, tags=tags)
    container.install(acct.deps)
    slack.script.extend([(429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})])  # Slack stumbles, then recovers
    today = Day(acct, slack)
    # When a day's worth of work goes through the real handlers, everything logged at DEBUG is kept
    with caplog.at_level(logging.DEBUG), Client(app_module.app) as client:
        for event in EVENTS:
            today.events.append(client.lambda_.invoke("on_iam_event", event).payload)
        today.sweep = client.lambda_.invoke("sweep", SCHEDULED).payload
        for key, method, path, body in [
            ("scan", "post", "/scans", {"dry_run": True}),
            ("check", "get", "/roles/foreign-sfn", None),
            ("remediate", "post", "/roles/cfn-sfn/remediate", {}),
            ("revert", "post", "/roles/order-pipeline-sfn/revert", {}),
            ("after-revert", "get", "/roles/order-pipeline-sfn", None),
        ]:
            if method == "get":
                response = client.http.get(path)
            else:
                response = client.http.post(path, headers=JSON, body=json.dumps(body))
            today.responses[key] = (response.status_code, json.loads(response.body))
    today.log_records = list(caplog.records)
    captured = capsys.readouterr()
    today.stdout, today.stderr = captured.out, captured.err
    yield today


def test_the_day_did_what_a_day_should(day: Day) -> None:
    # Then the event fixed its role, the sweep the rest it may fix, and each REST call answered as designed
    assert day.events[0]["action"] == "fixed"
    assert [e["reason"] for e in day.events[1:]] == ["own_event", "no_step_functions_principal", "no_detail"]
    assert day.sweep["actions"] == {"none": 3, "fixed": 1, "review": 1, "exempt": 1, "notified": 1}
    assert {k: status for k, (status, _body) in day.responses.items()} == {
        "scan": 200,
        "check": 200,
        "remediate": 200,
        "revert": 200,
        "after-revert": 200,
    }
    assert day.responses["after-revert"][1]["action"] == "exempt"


def test_every_write_was_recorded_first_and_only_narrowed(day: Day) -> None:
    # Then the guard saw each fix (recorded first, narrowing) and the revert (recorded first)
    guard = day.acct.guard
    assert sorted(w.role for w in guard.fixes()) == ["cfn-sfn", "mixed-sfn", "order-pipeline-sfn"]
    assert [w.role for w in guard.reverts()] == ["order-pipeline-sfn"]
    assert guard.violations == []
    assert all(w.kind is not None for w in guard.writes)


def test_every_decision_is_in_the_log(day: Day) -> None:
    logs = day.acct.logs
    # Then the processed event's decision carries its event id
    assert [d["role"] for d in logs.decisions() if d["event_id"] == day.events[0]["event_id"]] == ["order-pipeline-sfn"]
    # and each skipped event is a line with its reason
    assert sorted(line.extra["reason"] for line in logs.with_message("event skipped")) == sorted(
        e["reason"] for e in day.events[1:]
    )
    # and the sweep logged one decision per role, matching its summary, as did the scan and remediation
    by_trigger: dict[str, list[dict[str, Any]]] = {}
    for decision in logs.decisions():
        by_trigger.setdefault(decision["trigger"], []).append(decision)
    sweep_actions: dict[str, int] = {}
    for decision in by_trigger["sweep"]:
        sweep_actions[decision["action"]] = sweep_actions.get(decision["action"], 0) + 1
    assert sweep_actions == day.sweep["actions"]
    assert len(by_trigger["scan"]) == len(day.responses["scan"][1]["results"]) == len(ROLES)
    assert [d["role"] for d in by_trigger["api"] if d["action"] == "fixed"] == ["cfn-sfn"]
    assert [line.extra["status"] for line in logs.with_message("revert decision")] == ["reverted"]


def test_every_change_is_in_the_audit_trail(day: Day) -> None:
    acct = day.acct
    # Then each fixed role holds exactly the document its applied record says the bot wrote
    for name in ("mixed-sfn", "cfn-sfn"):
        (record,) = acct.records(name)
        assert record["status"] == "applied" and record["kind"] == "fix"
        assert acct.trust(name) == record["after"]
    # And the reverted role's history tells the whole story: the fix, marked reverted, then the revert
    fix, undo = acct.records("order-pipeline-sfn")
    assert (fix["kind"], fix["status"]) == ("fix", "reverted")
    assert (undo["kind"], undo["status"], undo["reverts"]) == ("revert", "applied", fix["change_id"])
    assert undo["after"] == fix["before"] == VULNERABLE == acct.trust("order-pipeline-sfn")


def test_owners_heard_on_both_channels(day: Day) -> None:
    # Then Slack took messages (after two 429s) and SNS published them
    assert len(day.slack.received) >= 2
    assert day.acct.metrics["NotificationSent"] >= 4


def test_the_webhook_secret_reaches_no_log_line_or_response(day: Day) -> None:
    # Given the Slack URL (with its secret) was used for real
    assert day.slack.received
    # Then the secret is in no log record (message, arguments, extras, exception), at any level, from any
    # logger; in nothing written to stdout or stderr (Powertools' JSON lines); in no handler or REST response
    formatter = logging.Formatter()
    logged = []
    for record in day.log_records:
        logged.append(record.getMessage())
        logged.extend(repr(value) for value in vars(record).values())
        if record.exc_info:
            logged.append(formatter.formatException(record.exc_info))
    assert len(day.log_records) > 0
    assert SECRET not in "\n".join(logged)
    assert SECRET not in day.acct.logs.text()
    assert SECRET not in day.stdout + day.stderr
    assert SECRET not in json.dumps([day.events, day.sweep, day.responses])
    assert SECRET not in repr(day.acct.deps)
