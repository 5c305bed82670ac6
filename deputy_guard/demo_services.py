"""The demo's last step: DEPUTY_GUARD_SERVICES=all on roles of other services, through the real handler.

An enforce-level service's role is pinned with its own service's ARN, an advise-level one (CloudTrail) is only
notified with its patch, an out-of-scope one (EC2) is answered without a single IAM call, and a statement that
trusts several services is split so each gets its own pins. The Step Functions steps before it are unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from typing import Any

from deputy_guard.demo_data import cloudtrail_event, seed_service_roles


def run_services(account: str, mode: str, out: Callable[[str], None]) -> dict[str, Any]:
    """Seed the other services' roles, send their CreateRole events with every service guarded, report each."""
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib.adapters import aws
    from chalicelib.runtime import container

    out("beyond Step Functions: DEPUTY_GUARD_SERVICES=all (deputy-guard services lists the catalogue)")
    os.environ["DEPUTY_GUARD_SERVICES"] = "all"
    container.reset()
    # The bot's own IAM client counts its calls; the demo seeds and reads through a client of its own.
    bot_iam = aws.make_client("iam")
    iam = boto3.client("iam", region_name=bot_iam.meta.region_name)
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    bot_iam.meta.events.register("before-call.iam.*", count)
    summary: dict[str, Any] = {}
    try:
        with Client(app_module.app, stage_name="demo", project_dir=tempfile.gettempdir()) as client:
            for role in seed_service_roles():
                iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.document))
                calls.clear()
                event = cloudtrail_event(account, "CreateRole", role.name, role.actor, role.document)
                result = client.lambda_.invoke("on_iam_event", event).payload
                bot_calls = sum(calls.values())
                document: Any = iam.get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"]
                after = json.loads(document) if isinstance(document, str) else document
                summary[role.name] = {
                    "what": role.what,
                    "status": result.get("status"),
                    "reason": result.get("reason"),
                    "action": result.get("action"),
                    "services": result.get("services", []),
                    "auto_fix": result.get("auto_fix"),
                    "iam_calls": bot_calls,
                    "source_arns": _source_arns(after),
                }
                _tell(role.name, summary[role.name], out)
    finally:
        bot_iam.meta.events.unregister("before-call.iam.*", count)
        os.environ.pop("DEPUTY_GUARD_SERVICES", None)
        container.reset()
    return summary


def _source_arns(document: dict[str, Any]) -> list[str]:
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    return [
        value
        for statement in statements
        for operator, block in statement.get("Condition", {}).items()
        for key, value in block.items()
        if key.lower() == "aws:sourcearn" and isinstance(value, str)
    ]


def _tell(name: str, entry: dict[str, Any], out: Callable[[str], None]) -> None:
    if entry["status"] == "skipped":
        text = f"skipped ({entry['reason']}), {entry['iam_calls']} IAM calls"
    else:
        level = "auto-fix" if entry["auto_fix"] else "advise: patch sent, never applied"
        text = f"{entry['action']} ({level})"
        if entry["source_arns"]:
            text += f"; pinned to {', '.join(entry['source_arns'])}"
    out(f"  {name:<22} {entry['what']}")
    out(f"  {'':<22} -> {text}")
