"""Event benchmark: AWS calls (by action) and in-process latency of ``handle_event`` per kind of event,
with and without the idempotency guard (Powertools Idempotency on DynamoDB).

Run: .venv/bin/python bench/bench_events.py [--runs 200] [--json]

AWS is moto in-process (``mock_aws``): no network, so a latency here is deputy-guard's own work plus
botocore's request building and parsing plus moto's handling; against AWS each call adds a round trip.
Events are the real-shaped fixtures of tests/fixtures/events (fresh ids per run) and, for the compliant
role, deputy_guard.demo's ``cloudtrail_event``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    ROOT,
    CallCounter,
    calls_text,
    compliant_trust,
    count_project_clients,
    machine,
    quiet,
    summary_ms,
    use_fake_aws,
    versions,
    vulnerable_trust,
)

ACCOUNT = "111122223333"  # the account of the fixtures; moto answers as this account
SELF_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deputy-guard-prod"  # the issuer of the echo fixture
EVENTS = ROOT / "tests" / "fixtures" / "events"
TABLE = "deputy-guard-bench"
WARMUP = 10
VULNERABLE = vulnerable_trust()
COMPLIANT = compliant_trust(ACCOUNT)


def fixture(name: str, role_name: str | None = None) -> dict[str, Any]:
    """A fixture event with fresh ids (so the idempotency guard sees a new event), optionally for another role."""
    event: dict[str, Any] = copy.deepcopy(_FIXTURES.setdefault(name, json.loads((EVENTS / name).read_text())))
    event["id"] = str(uuid.uuid4())
    event["detail"]["eventID"] = str(uuid.uuid4())
    event["detail"]["requestID"] = str(uuid.uuid4())
    if role_name is not None:
        event["detail"]["requestParameters"]["roleName"] = role_name
        role = (event["detail"].get("responseElements") or {}).get("role")
        if isinstance(role, dict):
            role["roleName"] = role_name
            role["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
    return event


_FIXTURES: dict[str, Any] = {}


@dataclass(frozen=True)
class Kind:
    """One kind of event: how to prepare a run (untimed) and what a correct outcome looks like."""

    name: str
    prepare: Callable[[int, Any], dict[str, Any]]  # (run number, deps) -> event
    check: Callable[[dict[str, Any]], bool]
    iam_target: dict[str, int] | None  # the IAM calls the design allows (None: no target)
    aws_target: int | None = None  # total AWS calls the design allows (None: no target)
    guard_only: bool = False


def kinds(iam: Any, handle: Callable[[dict[str, Any], Any], dict[str, Any]]) -> list[Kind]:
    """The kinds of event measured; ``iam`` is moto's IAM backend, used to seed roles outside the timing."""
    vulnerable_text = json.dumps(VULNERABLE)
    iam.create_role("bench-billing-sfn", json.dumps(COMPLIANT), "/", None, "", [{"Key": "team", "Value": "x"}], None)

    def new_vulnerable(prefix: str, run: int) -> str:
        name = f"{prefix}-{run:05d}-{uuid.uuid4().hex[:6]}"
        iam.create_role(name, vulnerable_text, "/", None, "", [{"Key": "owner", "Value": "payments-team"}], None)
        return name

    def vulnerable(run: int, _deps: Any) -> dict[str, Any]:
        return fixture("CreateRole-states-vulnerable.json", new_vulnerable("bench-fix", run))

    def duplicate(run: int, deps: Any) -> dict[str, Any]:
        # The first delivery is handled (untimed); the timed run is EventBridge delivering it again.
        event = fixture("CreateRole-states-vulnerable.json", new_vulnerable("bench-dup", run))
        with quiet():
            first = handle(event, deps)
        assert first.get("action") == "fixed", first
        return event

    def compliant(_run: int, _deps: Any) -> dict[str, Any]:
        from deputy_guard.demo_data import cloudtrail_event

        return cloudtrail_event(ACCOUNT, "UpdateAssumeRolePolicy", "bench-billing-sfn", "bob", COMPLIANT)

    return [
        Kind(
            "irrelevant role (CreateRole, Lambda-only trust)",
            lambda _run, _deps: fixture("CreateRole-lambda-irrelevant.json"),
            lambda r: r.get("reason") == "no_step_functions_principal",
            iam_target={},
            aws_target=0,
        ),
        Kind(
            "vulnerable role fixed (enforce)",
            vulnerable,
            lambda r: r.get("action") == "fixed",
            iam_target={"iam:GetRole": 1, "iam:UpdateAssumeRolePolicy": 1},
        ),
        Kind(
            "compliant role",
            compliant,
            lambda r: r.get("verdict") == "compliant" and r.get("action") == "none",
            iam_target={"iam:GetRole": 1},
        ),
        Kind(
            "echo of our own fix",
            lambda _run, _deps: fixture("UpdateAssumeRolePolicy-echo-of-deputy-guard.json"),
            lambda r: r.get("reason") == "own_event",
            iam_target={},
            aws_target=0,
        ),
        Kind(
            "same event delivered again",
            duplicate,
            lambda r: r.get("replayed") is True or r.get("action") == "none",
            iam_target=None,
        ),
    ]


def measure(
    kind: Kind, deps: Any, runs: int, counter: CallCounter, handle: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    durations: list[float] = []
    call_sets: Counter[str] = Counter()
    example: dict[str, int] = {}
    failures = 0
    for run in range(-WARMUP, runs):
        event = kind.prepare(run, deps)
        counter.reset()
        with quiet():
            start = time.perf_counter()
            result = handle(event, deps)
            elapsed = time.perf_counter() - start
        if run < 0:
            continue
        durations.append(elapsed)
        calls = counter.snapshot()
        call_sets[json.dumps(calls)] += 1
        example = example or calls
        failures += not kind.check(result)
    common = json.loads(call_sets.most_common(1)[0][0])
    iam_calls = {k: v for k, v in common.items() if k.startswith("iam:")}
    met = None
    if kind.iam_target is not None:
        met = iam_calls == kind.iam_target
        if kind.aws_target is not None:
            met = met and sum(common.values()) <= kind.aws_target
    return {
        "kind": kind.name,
        "guard": deps.once is not None,
        "runs": runs,
        "calls": common,
        "calls_vary": len(call_sets) > 1,
        "aws_calls": sum(common.values()),
        "iam_calls": sum(iam_calls.values()),
        **summary_ms(durations),
        "unexpected_outcomes": failures,
        "target": None
        if kind.iam_target is None
        else (
            f"{kind.aws_target} AWS calls"
            if kind.aws_target is not None
            else "IAM: " + (", ".join(f"{k.split(':')[1]} x{v}" for k, v in kind.iam_target.items()) or "none")
        ),
        "met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per kind and guard setting (default: 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    started = time.perf_counter()
    use_fake_aws(None)
    os.environ.update(
        {
            "MOTO_ACCOUNT_ID": ACCOUNT,
            "DEPUTY_GUARD_MODE": "enforce",
            "DEPUTY_GUARD_TABLE": TABLE,
            "DEPUTY_GUARD_SELF_ROLE_ARN": SELF_ROLE_ARN,
            "LOG_LEVEL": "INFO",
        }
    )
    from moto import mock_aws

    with mock_aws():
        from moto.backends import get_backend

        from chalicelib.adapters import aws
        from chalicelib.domain.settings import load_settings
        from chalicelib.runtime.wiring import CountingMetrics, build_deps
        from chalicelib.service.enforce import handle_event

        aws.reset_clients()  # clients made before mock_aws started would not be mocked
        topic = aws.make_client("sns").create_topic(Name="deputy-guard-bench")["TopicArn"]
        os.environ["DEPUTY_GUARD_SNS_TOPIC_ARN"] = topic
        aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
        settings = load_settings(os.environ)
        counter = CallCounter()
        count_project_clients(counter)
        iam = get_backend("iam")[ACCOUNT]["global"]
        measured = kinds(iam, handle_event)
        rows = []
        for guard in (False, True):
            deps = build_deps(settings, metrics=CountingMetrics(), idempotent=guard)
            for kind in measured:
                say(f"  {kind.name}, guard {'on' if guard else 'off'} ...")
                rows.append(measure(kind, deps, args.runs, counter, handle_event))

    output = {
        "machine": machine(),
        "versions": versions("moto", "boto3", "botocore", "aws-lambda-powertools"),
        "aws": "moto in-process (mock_aws), no network",
        "runs": args.runs,
        "warmup": WARMUP,
        "notifier": "SNS topic (Slack off)",
        "total_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    output["targets_met"] = all(row["met"] is not False for row in rows)
    output["outcomes_ok"] = all(row["unexpected_outcomes"] == 0 for row in rows)
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(render(output))
    if not output["outcomes_ok"]:
        return 2
    return 0 if output["targets_met"] else 1


def render(output: dict[str, Any]) -> str:
    """A markdown table of the run (also used by run_all.py)."""
    lines = [
        "| event | guard | AWS calls per event | median | p95 | target | met |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for row in output["rows"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        vary = " (varies)" if row["calls_vary"] else ""
        lines.append(
            f"| {row['kind']} | {'on' if row['guard'] else 'off'} | {calls_text(row['calls'])}{vary} "
            f"| {row['median_ms']:.2f} ms | {row['p95_ms']:.2f} ms | {row['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
