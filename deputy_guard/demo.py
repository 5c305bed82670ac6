"""`deputy-guard demo`: the whole loop on embedded AWS, with no account and no network.

It starts moto's server and a Slack stand-in on loopback, seeds an account with the roles a real one
has, then drives the real Lambda entry points: CloudTrail-shaped events through ``on_iam_event``, the
scheduled ``sweep``, and ``POST /scans`` over HTTP. It prints what it found, the diffs it applied and
the messages that arrived, then stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS, ensure_mac_key
from deputy_guard.demo_approval import approval_environment, run_approval
from deputy_guard.demo_data import BOT_ROLE, REGION, cloudtrail_event, scheduled_event, seed_roles
from deputy_guard.demo_org import EVENT_ROLE as MEMBER_EVENT_ROLE
from deputy_guard.demo_org import run_organization
from deputy_guard.demo_services import run_services
from deputy_guard.demo_shell import Arrivals, export_line
from deputy_guard.embedded import EmbeddedAws, LocalApi, SlackStandIn


@dataclass
class DemoOutcome:
    """What the demo did, for the printed story and the --json summary."""

    mode: str
    endpoint: str = ""
    api_url: str = ""
    account: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    slack: list[dict[str, Any]] = field(default_factory=list)
    sns: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=dict)
    organization: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    drain_sns: Callable[[], list[dict[str, Any]]] = field(default=list, repr=False)  # SNS messages since last

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "endpoint": self.endpoint,
            "account": self.account,
            "events": self.events,
            "sweep": self.sweep,
            "scan": {k: self.scan.get(k) for k in ("complete", "summary")}
            | {
                "results": [{k: r[k] for k in ("role_name", "verdict", "action")} for r in self.scan.get("results", [])]
            },
            "fixes": [{k: f[k] for k in ("role_name", "change_id", "trigger")} for f in self.fixes],
            "slack_messages": [m.get("text", "") for m in self.slack],
            "sns_messages": [m["subject"] for m in self.sns],
            "final_verdicts": self.final,
            "approval": self.approval,
            "organization": self.organization,
            "services": self.services,
            "seconds": round(self.seconds, 2),
        }


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every step behaved as the mode says."""
    out: Callable[[str], None] = (lambda _text: None) if args.json else print
    started = time.monotonic()
    aws_server = EmbeddedAws()
    slack = SlackStandIn()
    api: LocalApi | None = None
    try:
        aws_server.start()
        slack.start()
        outcome = DemoOutcome(mode=args.mode, endpoint=aws_server.url)
        _configure_environment(aws_server.url, slack.url, args.mode)
        os.environ.update(approval_environment(slack))
        api = _drive(outcome, slack, out)
        out("")
        outcome.approval = run_approval(api.url, slack, outcome.account, args.mode, out)
        out("")
        outcome.organization = run_organization(api.url, args.mode, out, keep_scope=args.keep_running)
        out("")
        outcome.services = run_services(outcome.account, args.mode, out)
        outcome.seconds = time.monotonic() - started
        if args.json:
            print(json.dumps(outcome.to_dict(), indent=2))
        else:
            _print_closing(outcome, out, keep_running=args.keep_running)
        if args.keep_running:
            _keep_running(outcome, slack, out if not args.json else print)
        return 0
    finally:
        if api is not None:
            api.stop()
        slack.stop()
        aws_server.stop()


def _configure_environment(endpoint: str, webhook: str, mode: str) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_SESSION_TOKEN": "demo",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "DEPUTY_GUARD_MODE": mode,
            "DEPUTY_GUARD_TABLE": "deputy-guard-demo",
            "DEPUTY_GUARD_SIGNING_KEY": DEFAULT_SIGNING_KEY_ALIAS,
            "DEPUTY_GUARD_SLACK_WEBHOOK_URL": webhook,
            "DEPUTY_GUARD_EXEMPTIONS": json.dumps(
                [{"name": "legacy-*", "reason": "retired at the end of the quarter"}]
            ),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "POWERTOOLS_METRICS_NAMESPACE": "DeputyGuardDemo",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    # Everything the demo talks to is on loopback: never send it through a proxy the shell may set.
    for name in ("NO_PROXY", "no_proxy"):
        present = [part for part in os.environ.get(name, "").split(",") if part]
        os.environ[name] = ",".join([*present, *(h for h in ("127.0.0.1", "localhost") if h not in present)])


def _drive(outcome: DemoOutcome, slack: SlackStandIn, out: Callable[[str], None]) -> LocalApi:
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib.adapters import aws
    from chalicelib.domain.policy import render_diff
    from chalicelib.runtime import container
    from deputy_guard.report import render_table

    aws.reset_clients()
    container.reset()
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    outcome.account = account
    os.environ["DEPUTY_GUARD_SELF_ROLE_ARN"] = f"arn:aws:iam::{account}:role/{BOT_ROLE}"
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    topic = sns.create_topic(Name="deputy-guard-demo")["TopicArn"]
    queue = sqs.create_queue(QueueName="deputy-guard-demo-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    os.environ["DEPUTY_GUARD_SNS_TOPIC_ARN"] = topic

    out(f"deputy-guard demo: embedded AWS at {outcome.endpoint}, Slack stand-in on loopback, mode {outcome.mode}")
    out("")
    settings = container.settings()
    created = aws.DynamoTable(aws.make_client("dynamodb"), settings.table).ensure_exists()
    assert settings.signing_key is not None  # set by _configure_environment
    ensure_mac_key(aws.make_client("kms"), settings.signing_key)
    out(f"setup: audit table {settings.table} {'created' if created else 'exists'}; SNS topic {topic}")

    roles = seed_roles(account)
    for role in roles:
        iam.create_role(
            RoleName=role.name,
            Path=role.path,
            AssumeRolePolicyDocument=json.dumps(role.document),
            Tags=[{"Key": k, "Value": v} for k, v in role.tags.items()],
        )
    out(f"seeded account {account} with {len(roles)} roles:")
    width = max(len(r.name) for r in roles)
    for role in roles:
        out(f"  {role.name:<{width}}  {role.what}")
    out("")

    with Client(app_module.app, stage_name="demo", project_dir=tempfile.gettempdir()) as client:
        out("CloudTrail events -> on_iam_event:")
        events = [(r.name, cloudtrail_event(account, r.event, r.name, r.actor, r.document)) for r in roles if r.event]
        events.append(
            (
                "orders-pipeline-sfn",
                cloudtrail_event(account, "AttachRolePolicy", "orders-pipeline-sfn", "bob", error="AccessDenied"),
            )
        )
        for name, event in events:
            _invoke(client, event, name, outcome, out)
        # The owner drops the opt-out: the UntagRole event acts at once, not at the next sweep.
        iam.untag_role(RoleName="fraud-check-sfn", TagKeys=["deputy-guard:mode"])
        untag = cloudtrail_event(account, "UntagRole", "fraud-check-sfn", "bob")
        _invoke(client, untag, "fraud-check-sfn (exempt tag removed)", outcome, out)
        # What CloudTrail records for the bot's own fix comes back as an event: it must be a no-op.
        fixed_now: Any = iam.get_role(RoleName="orders-pipeline-sfn")["Role"]["AssumeRolePolicyDocument"]
        echo = cloudtrail_event(account, "UpdateAssumeRolePolicy", "orders-pipeline-sfn", "deputy-guard", fixed_now)
        label = "echo of our own fix" if outcome.mode == "enforce" else "a call by deputy-guard's own role"
        _invoke(client, echo, f"orders-pipeline-sfn ({label})", outcome, out)
        # EventBridge delivers at least once: the same event again changes and announces nothing.
        _invoke(client, events[0][1], "orders-pipeline-sfn (same event delivered again)", outcome, out)
        out("")

        out("scheduled sweep (catches what events missed):")
        sweep_event = scheduled_event(account, "deputy-guard-demo-sweep")
        outcome.sweep = client.lambda_.invoke("sweep", sweep_event).payload
        actions = ", ".join(f"{n} {a}" for a, n in sorted(outcome.sweep.get("actions", {}).items()))
        out(f"  {outcome.sweep.get('status')}: {actions}")
        out("")

    api = LocalApi(app_module.app).start()
    outcome.api_url = api.url
    request = urllib.request.Request(  # noqa: S310 (loopback URL built above)
        f"{api.url}/scans", data=json.dumps({"dry_run": True}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback URL built above)
        outcome.scan = json.loads(response.read())
    out(f"POST {api.url}/scans (dry run, over HTTP):")
    out(_indent(render_table(outcome.scan)))
    out("")

    deps = container.deps()
    for role in roles:
        arn = f"arn:aws:iam::{account}:role{role.path}{role.name}"
        for record in reversed(deps.audit.history(arn)):
            if record.status.value == "applied" and record.kind.value == "fix":
                outcome.fixes.append(
                    {
                        "role_name": role.name,
                        "change_id": record.change_id,
                        "trigger": record.trigger,
                        "diff": render_diff(
                            record.before, record.after, f"{role.name} (before)", f"{role.name} (after)"
                        ),
                    }
                )
    outcome.final = {r["role_name"]: r["verdict"] for r in outcome.scan.get("results", [])}
    outcome.slack = list(slack.received)
    outcome.sns = _drain_sns(sqs, queue)
    outcome.drain_sns = lambda: _drain_sns(sqs, queue)
    out(f"diffs applied ({len(outcome.fixes)}):")
    for fix in outcome.fixes:
        out(f"  {fix['role_name']} (change {fix['change_id']}, by {fix['trigger']})")
        out(_indent(fix["diff"].rstrip(), "    "))
    out("")
    out(f"Slack messages that arrived ({len(outcome.slack)}):")
    for message in outcome.slack:
        out(f"  - {_first_line(message.get('text', ''))}")
    out(f"SNS messages that arrived ({len(outcome.sns)}):")
    for message in outcome.sns:
        out(f"  - {message['subject']}  [{', '.join(f'{k}={v}' for k, v in message['attributes'].items())}]")
    return api


def _invoke(client: Any, event: dict[str, Any], label: str, outcome: DemoOutcome, out: Callable[[str], None]) -> None:
    result = client.lambda_.invoke("on_iam_event", event).payload
    detail = event.get("detail", {})
    entry = {
        "event": detail.get("eventName"),
        "label": label,
        **{k: result.get(k) for k in ("status", "reason", "verdict", "action", "replayed")},
    }
    outcome.events.append(entry)
    if result.get("replayed"):
        text = "already handled: nothing repeated"
    elif result.get("status") == "skipped":
        text = f"skipped ({result.get('reason')})"
    else:
        text = f"{result.get('verdict')} -> {result.get('action')}"
    out(f"  {detail.get('eventName', '?'):<23} {label:<52} {text}")


def _drain_sns(sqs: Any, queue: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            envelope = json.loads(message["Body"])
            attributes = {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()}
            messages.append(
                {"subject": envelope.get("Subject", ""), "attributes": attributes, "body": envelope["Message"]}
            )
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def _print_closing(outcome: DemoOutcome, out: Callable[[str], None], *, keep_running: bool) -> None:
    counts: dict[str, int] = {}
    for verdict in outcome.final.values():
        counts[verdict] = counts.get(verdict, 0) + 1
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    out("")
    out(
        f"summary: {len(outcome.fixes)} roles fixed, {len(outcome.slack)} Slack and {len(outcome.sns)} SNS messages; "
        f"account now: {verdicts}; {outcome.seconds:.1f} s"
    )
    if outcome.fixes and keep_running:
        # The embedded AWS lives on below: the revert can be tried in another shell (with the export line).
        role = outcome.fixes[0]["role_name"]
        out(f"undo a fix, in another shell after the export line below: deputy-guard revert {role}")
    elif outcome.fixes:
        out("the embedded AWS is gone with the demo: `deputy-guard demo --keep-running` keeps it up to try")
        out("`deputy-guard revert ROLE` on a fixed role (it restores the recorded original)")


def _keep_running(outcome: DemoOutcome, slack: SlackStandIn, out: Callable[[str], None]) -> None:
    cli = shutil.which("deputy-guard") or str(Path(sys.argv[0]).resolve())
    out("")
    out("still running (Ctrl-C to stop). In another shell:")
    out(f"  {export_line(os.environ, outcome.api_url)}")
    out(f"  {cli} scan                # then `scan --fix`: its Slack and SNS messages are shown here")
    out(f"  {cli} api scans           # the REST API, SigV4-signed")
    out(f"  curl -s -X POST {outcome.api_url}/scans -H 'Content-Type: application/json' -d '{{\"dry_run\": true}}'")
    member = outcome.organization.get("member_event", {})
    if member.get("action") == "fixed":
        # The API serves the demo's organization: a member account's fix is undone through its member role.
        role, account = MEMBER_EVENT_ROLE, member["account"]
        out(f"  {cli} api revert {role} --account {account}   # the bot reverts in member account {account}")
        out(f"  {cli} revert {role} --account {account}       # or you, with the central account's credentials")
    sys.stdout.flush()
    arrivals = Arrivals(slack.received, outcome.drain_sns, out)
    stop = threading.Event()
    # Ctrl-C or a plain `kill` both end the demo through the same clean shutdown (servers stopped).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    while not stop.wait(0.5):
        arrivals.check()
        sys.stdout.flush()
    out("stopping")


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
