"""Slack approvals: how long a click waits for its answer, and how many AWS calls it makes.

Run: .venv/bin/python bench/bench_approvals.py [--clicks 20] [--latency-ms 0,20] [--json]

For each AWS latency (injected in front of moto's server on loopback, every request paying it once), the
local API (Chalice's local server, in this process) serves ``POST /slack/actions``; each click is signed
as Slack signs it and answered through the Slack stand-in's response URL. Measured from the client's side:

* ``apply_fix``: an approved click on a fresh alert (the whole remediate pipeline, the Revert button, the
  answer to response_url); median, p95 and max;
* a refused click (not an approver): no table read, no IAM call;
* a bad signature: answered 401 before anything is read.

Slack gives a click 3 s. Target: p95 of ``apply_fix`` under 1 s at 20 ms per AWS call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    CallCounter,
    LatencyAws,
    count_project_clients,
    machine,
    summary_ms,
    use_fake_aws,
    vulnerable_trust,
)

TARGET_P95_MS = 1000.0
TABLE = "deputy-guard-bench-approvals"
APPROVER = "U0BENCH0001"
SECRET = "bench-signing-secret"


def run(clicks: int, latency_ms: float) -> dict[str, Any]:
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib.adapters import aws
    from chalicelib.runtime import container
    from deputy_guard.demo_approval import buttons_of, click_body, post_click
    from deputy_guard.demo_data import cloudtrail_event
    from deputy_guard.embedded import LocalApi, SlackStandIn

    server = LatencyAws(0.0, keep_alive=True).start()
    slack = SlackStandIn().start()
    use_fake_aws(server.url)
    os.environ.update(
        {
            "DEPUTY_GUARD_MODE": "notify",
            "DEPUTY_GUARD_TABLE": TABLE,
            "DEPUTY_GUARD_SLACK_WEBHOOK_URL": slack.url,
            "DEPUTY_GUARD_SLACK_APPROVERS": APPROVER,
            "DEPUTY_GUARD_SLACK_SIGNING_SECRET": SECRET,
            "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": slack.response_base,
            "LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    container.reset()
    aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
    account = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
    os.environ["DEPUTY_GUARD_SELF_ROLE_ARN"] = f"arn:aws:iam::{account}:role/deputy-guard-bench"
    container.reset()
    iam = boto3.client("iam", region_name="us-east-1")
    api = LocalApi(app_module.app).start()
    counter = CallCounter()
    try:
        messages = []
        with Client(app_module.app, stage_name="bench", project_dir="/tmp") as lambdas:
            for index in range(clicks + 2):
                name = f"bench-approval-{latency_ms:g}ms-{index:03d}"
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(vulnerable_trust()))
                lambdas.lambda_.invoke("on_iam_event", cloudtrail_event(account, "CreateRole", name, "alice"))
                messages.append(next(m for m in reversed(slack.received) if name in m.get("text", "")))
        count_project_clients(counter, ("iam", "dynamodb", "sns", "sts"))
        server.latency = latency_ms / 1000

        def body(message: dict[str, Any], user: str = APPROVER) -> bytes:
            token, block = buttons_of(message)["apply_fix"]
            return click_body(
                user=user, action_id="apply_fix", token=token, block_id=block, response_url=slack.response_url()
            )

        post_click(api.url, body(messages[-1]), secret=SECRET)  # the first click builds the route's dependencies
        applied: list[float] = []
        calls: dict[str, int] = {}
        for message in messages[:clicks]:
            counter.reset()
            status, answer, seconds = post_click(api.url, body(message), secret=SECRET)
            assert status == 200 and answer.get("replace_original"), answer
            applied.append(seconds)
            calls = counter.snapshot()
        counter.reset()
        refused = [post_click(api.url, body(messages[-2], user="U0STRANGER"), secret=SECRET)[2] for _ in range(clicks)]
        refused_calls = counter.snapshot()
        unsigned = [post_click(api.url, body(messages[-2]), secret="wrong")[2] for _ in range(clicks)]
        return {
            "latency_ms": latency_ms,
            "apply_fix_ms": summary_ms(applied),
            "apply_fix_calls": calls,
            "not_approver_ms": summary_ms(refused),
            "not_approver_calls": refused_calls,
            "bad_signature_ms": summary_ms(unsigned),
        }
    finally:
        api.stop()
        slack.stop()
        server.stop()
        container.reset()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--latency-ms", default="0,20")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(args.clicks, float(ms)) for ms in args.latency_ms.split(",")]
    worst = max(r["apply_fix_ms"]["p95_ms"] for r in results if r["latency_ms"] <= 20)
    if args.json:
        print(json.dumps({"machine": machine(), "results": results, "target_p95_ms": TARGET_P95_MS}, indent=2))
    else:
        print("| AWS latency | apply_fix median / p95 / max | AWS calls per apply_fix | not approver (calls) |", end="")
        print(" bad signature |")
        print("|---|---|---|---|---|")
        for r in results:
            a, n, b = r["apply_fix_ms"], r["not_approver_ms"], r["bad_signature_ms"]
            calls = ", ".join(f"{k} {v}" for k, v in sorted(r["apply_fix_calls"].items()))
            spread = f"{a['median_ms']:.0f} / {a['p95_ms']:.0f} / {a['max_ms']:.0f} ms"
            refusal = f"{n['median_ms']:.0f} ms ({sum(r['not_approver_calls'].values())})"
            print(f"| {r['latency_ms']:g} ms | {spread} | {calls} | {refusal} | {b['median_ms']:.0f} ms |")
    return 0 if worst <= TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
