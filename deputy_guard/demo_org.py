"""The demo's organization step: one deployment guarding member accounts (docs/organizations.md).

moto's Organizations API creates the member accounts; the member role is created in each through
OrganizationAccountAccessRole, except in one account, left broken on purpose. Then the real handlers run
with ``DEPUTY_GUARD_ACCOUNTS=org``: an event from a member account is fixed in that account, an event from
an account outside the organization is skipped, and the sweep fans out through real SQS messages that an
event-source stand-in delivers to ``scan_account``; the broken account fails, is retried, and lands in the
dead-letter queue while every other account is swept.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from deputy_guard.demo_data import cloudtrail_event, scheduled_event
from deputy_guard.embedded_org import (
    SqsEventSource,
    create_work_queues,
    dead_letters,
    member_iam,
    seed_organization,
)

MEMBERS = 4
BROKEN = 3  # index of the member account left without deputy-guard-member
OUTSIDER = "210987654321"  # an account outside the organization
EVENT_ROLE = "payments-sfn"
MISSED_ROLE = "ledger-sfn"
EVENT_SOURCE_CONCURRENCY = 3  # the stand-in event source's maximum concurrency


def _states(condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "states.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def run_organization(
    api_url: str, mode: str, out: Callable[[str], None], *, keep_scope: bool = False
) -> dict[str, Any]:
    """Seed an organization, then drive events, the fanned-out sweep and the REST account parameter.

    ``keep_scope`` leaves the bot guarding the organization afterwards (``demo --keep-running``), so the REST
    API it leaves up acts in the member accounts too (``?account=ID``).
    """
    from chalice.test import Client

    import app as app_module
    from chalicelib.runtime import container

    started = time.monotonic()
    out("organization: one deployment guarding member accounts")
    org = seed_organization(MEMBERS, broken=[BROKEN], name_prefix="team")
    broken = org.members[BROKEN]
    for index, account in enumerate(org.members):
        iam = member_iam(account)
        iam.create_role(RoleName=EVENT_ROLE, AssumeRolePolicyDocument=json.dumps(_states()), Tags=[_owner(index)])
        iam.create_role(RoleName=MISSED_ROLE, AssumeRolePolicyDocument=json.dumps(_states()), Tags=[_owner(index)])
    out(
        f"  management account {org.management} (deputy-guard runs here) and {MEMBERS} member accounts from "
        f"moto's Organizations API; deputy-guard-member created in each through OrganizationAccountAccessRole, "
        f"except {broken} (left broken on purpose)"
    )
    queue, dlq = create_work_queues("deputy-guard-demo-work", visibility_seconds=60, max_receives=2)
    os.environ.update({"DEPUTY_GUARD_ACCOUNTS": "org", "DEPUTY_GUARD_WORK_QUEUE_URL": queue})
    container.reset()
    container.metrics().clear_metrics()  # nothing flushes the demo's metrics: keep them from piling up
    # The broken account's refusals are logged as errors, as deployed; the story below reports them instead.
    level = container.logger().log_level
    container.logger().setLevel("CRITICAL")
    summary: dict[str, Any] = {"management": org.management, "members": org.members, "broken": broken}
    member = org.members[0]
    try:
        with Client(app_module.app, stage_name="demo", project_dir=tempfile.gettempdir()) as client:
            event = cloudtrail_event(member, "CreateRole", EVENT_ROLE, "alice", _states())
            result = client.lambda_.invoke("on_iam_event", event).payload
            fixed = member_iam(member).get_role(RoleName=EVENT_ROLE)["Role"]["AssumeRolePolicyDocument"]
            fixed = json.loads(fixed) if isinstance(fixed, str) else fixed
            pinned = fixed["Statement"][0].get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount")
            summary["member_event"] = {"account": member, "action": result.get("action"), "pinned_account": pinned}
            out(f"  CreateRole in member {member} -> on_iam_event: {result.get('verdict')} -> {result.get('action')}")
            if pinned:
                out(f"    the role in {member} now pins aws:SourceAccount {pinned} (its own account)")
            outsider = client.lambda_.invoke(
                "on_iam_event", cloudtrail_event(OUTSIDER, "CreateRole", EVENT_ROLE, "alice", _states())
            ).payload
            summary["outsider_event"] = {"account": OUTSIDER, "status": outsider.get("status"), **outsider}
            reason = outsider.get("reason")
            out(f"  CreateRole in {OUTSIDER} (not in the organization): {outsider.get('status')} ({reason})")

            fanned = client.lambda_.invoke("sweep", scheduled_event(org.management)).payload
            out(f"  sweep: {fanned.get('enqueued')} SQS messages, one per account, to the work queue")
            source = SqsEventSource(
                queue,
                lambda e: client.lambda_.invoke("scan_account", e).payload,
                max_concurrency=EVENT_SOURCE_CONCURRENCY,
            )
            deliveries = source.drain(timeout=40)
        summary["sweep"] = _per_account(deliveries)
        summary["dead_letters"] = [item.get("account") for item in dead_letters(dlq)]
        summary["peak_concurrency"] = source.peak_concurrency
        out(f"  scan_account, at most {EVENT_SOURCE_CONCURRENCY} at once (the event source's maximum concurrency):")
        for account, entry in summary["sweep"].items():
            if entry["status"] == "ok":
                actions = ", ".join(f"{n} {a}" for a, n in sorted(entry["actions"].items())) or "nothing to do"
                out(f"    {account}: swept: {actions}")
            else:
                out(f"    {account}: FAILED {entry['attempts']} times ({entry['error']})")
        out(f"  dead-letter queue: {', '.join(summary['dead_letters']) or 'empty'}")
        summary["rest"] = _rest(api_url, member)
        out(
            f"  GET /roles/{EVENT_ROLE}?account={member}: {summary['rest']['member']}; "
            f"?account={OUTSIDER}: HTTP {summary['rest']['outsider']}"
        )
    finally:
        container.logger().setLevel(level)
        if not keep_scope:
            for name in ("DEPUTY_GUARD_ACCOUNTS", "DEPUTY_GUARD_WORK_QUEUE_URL"):
                os.environ.pop(name, None)
        container.reset()
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary


def _owner(index: int) -> dict[str, str]:
    return {"Key": "owner", "Value": f"team-{index:02d}"}


def _per_account(deliveries: list[Any]) -> dict[str, dict[str, Any]]:
    """The last word on each account: swept (with its actions) or failed (attempts, error)."""
    accounts: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        account = json.loads(delivery.body)["account"]
        entry = accounts.setdefault(account, {"status": "failed", "attempts": 0, "error": None, "actions": {}})
        if delivery.ok:
            swept = (delivery.result or {}).get("results", [{}])[0]
            entry.update(status="ok", actions=swept.get("actions", {}), summary=swept.get("summary", {}))
        else:
            entry["attempts"] += 1
            entry["error"] = (delivery.error or "").split(": ", 1)[-1]
    return dict(sorted(accounts.items()))


def _rest(api_url: str, member: str) -> dict[str, Any]:
    def get(account: str) -> tuple[int, dict[str, Any]]:
        url = f"{api_url}/roles/{EVENT_ROLE}?account={account}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback URL)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    status, body = get(member)
    outsider, _ = get(OUTSIDER)
    return {"member": body.get("verdict") if status == 200 else f"HTTP {status}", "outsider": outsider}
