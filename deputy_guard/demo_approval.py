"""The demo's Slack approval: a notify-mode alert, a signed click by a local approver, the fix, the message updated.

The click is what Slack would send: a ``block_actions`` payload, form-encoded, signed with the demo's signing
secret (Slack's v0 scheme), POSTed over HTTP to the local API's ``/slack/actions``. The answer goes to the
Slack stand-in's response URL, as Slack's goes to ``https://hooks.slack.com/actions/…``.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.domain.slack_actions import APPLY_FIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from deputy_guard.demo_data import cloudtrail_event
from deputy_guard.embedded import SlackStandIn

DEMO_APPROVER = "U0DEMOAPPROVER"
# Known to the demo only: it signs the clicks it makes up, as Slack signs real ones with the app's secret.
DEMO_SIGNING_SECRET = "deputy-guard-demo-signing-secret"  # noqa: S105 - a demo value, never deployed
APPROVAL_ROLE = "invoices-sfn"
_VULNERABLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def approval_environment(slack: SlackStandIn) -> dict[str, str]:
    """The settings that turn approvals on for the demo: one approver, the demo's secret, the stand-in's URLs."""
    return {
        "DEPUTY_GUARD_SLACK_APPROVERS": DEMO_APPROVER,
        "DEPUTY_GUARD_SLACK_SIGNING_SECRET": DEMO_SIGNING_SECRET,
        "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": slack.response_base,
    }


def buttons_of(message: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """action_id -> (token, block_id) for every button of a Block Kit message."""
    found: dict[str, tuple[str, str]] = {}
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                found[element["action_id"]] = (element["value"], block.get("block_id", ""))
    return found


def click_body(
    *,
    user: str,
    action_id: str,
    token: str,
    block_id: str,
    response_url: str,
    message: Mapping[str, Any] | None = None,
) -> bytes:
    """A ``block_actions`` interaction as Slack posts it: ``payload=<url-encoded JSON>``."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0DEMO0000"},
        "api_app_id": "A0DEMO0000",
        "team": {"id": "T0DEMO0000", "domain": "deputy-guard-demo"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0DEMO0000"},
        "channel": {"id": "C0DEMO0000", "name": "deputy-guard"},
        "message": dict(message or {}),
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": token,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()


def post_click(
    api_url: str, body: bytes, *, secret: str = DEMO_SIGNING_SECRET, timestamp: int | None = None
) -> tuple[int, dict[str, Any], float]:
    """POST a signed click to ``/slack/actions``; (status, answer, seconds until the answer)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    request = urllib.request.Request(  # noqa: S310 - the local API on loopback
        f"{api_url}/slack/actions",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, stamp, body),
        },
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    return status, json.loads(raw or b"{}"), time.monotonic() - started


def run_approval(
    api_url: str, slack: SlackStandIn, account: str, mode: str, out: Callable[[str], None]
) -> dict[str, Any]:
    """Tell the approval story; returns its outcome for the --json summary."""
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib.runtime import container

    out("Slack approval (a notify-mode alert, a signed click by an approver, the fix, the message updated):")
    if mode == "dry-run":
        out("  skipped: a dry run sends no alert, so there is nothing to approve")
        return {"skipped": "dry-run"}
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(
        RoleName=APPROVAL_ROLE,
        AssumeRolePolicyDocument=json.dumps(_VULNERABLE),
        Tags=[{"Key": "owner", "Value": "finance-team"}, {"Key": "deputy-guard:mode", "Value": "notify"}],
    )
    before = len(slack.received)
    with Client(app_module.app, stage_name="demo", project_dir=tempfile.gettempdir()) as client:
        created = cloudtrail_event(account, "CreateRole", APPROVAL_ROLE, "alice", _VULNERABLE)
        result = client.lambda_.invoke("on_iam_event", created).payload
    alert = next((m for m in slack.received[before:] if APPROVAL_ROLE in m.get("text", "")), {})
    buttons = buttons_of(alert)
    out(f"  CreateRole {APPROVAL_ROLE} (tag deputy-guard:mode=notify) -> {result.get('action')}")
    out(f"  alert on Slack with buttons: {', '.join(sorted(buttons)) or 'none'}")
    if APPLY_FIX not in buttons:
        return {"alert": alert.get("text", ""), "buttons": sorted(buttons), "error": "no Apply fix button"}
    token, block_id = buttons[APPLY_FIX]
    body = click_body(
        user=DEMO_APPROVER,
        action_id=APPLY_FIX,
        token=token,
        block_id=block_id,
        response_url=slack.response_url(),
        message=alert,
    )
    status, _answer, seconds = post_click(api_url, body)
    out(f"  {DEMO_APPROVER} clicks Apply fix: POST {api_url}/slack/actions (signed) -> {status}")
    out(f"  answered in {seconds * 1000:.0f} ms (Slack waits 3 s)")
    role = container.deps().iam.get_role(APPROVAL_ROLE)
    history = container.deps().audit.history(role.arn) if role is not None else []
    fix = next((r for r in history if r.kind.value == "fix"), None)
    with urllib.request.urlopen(f"{api_url}/roles/{APPROVAL_ROLE}", timeout=30) as response:  # noqa: S310 - loopback
        verdict = json.loads(response.read())["verdict"]
    change, actor = (fix.change_id, fix.actor) if fix else ("?", "?")
    out(f"  the fix: {APPROVAL_ROLE} is now {verdict}; audit record {change} by {actor}")
    updated: dict[str, Any] = next((r for r in reversed(slack.responses) if r.get("replace_original")), {})
    header = next((b["text"]["text"] for b in updated.get("blocks", []) if b.get("type") == "header"), "")
    out(f"  the message updated through response_url: {header or 'no update'}")
    replay_status, replay, _ = post_click(api_url, body)
    out(f"  the same click again -> {replay_status}, only the clicker sees: {replay.get('text', '')}")
    return {
        "role_name": APPROVAL_ROLE,
        "alert_buttons": sorted(buttons),
        "click_status": status,
        "click_seconds": round(seconds, 3),
        "action": (fix.kind.value if fix else None),
        "actor": fix.actor if fix else None,
        "final_verdict": verdict,
        "message_updated": bool(updated),
        "updated_header": header,
        "replay": replay.get("response_type"),
        "replay_text": replay.get("text", ""),
    }
