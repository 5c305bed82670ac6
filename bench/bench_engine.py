"""Engine throughput: evaluations and fixes per second on one core over a realistic mix of trust policies.

Run: .venv/bin/python bench/bench_engine.py [--seconds S] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import RoleContext, Verdict

ACCOUNT = "111122223333"
TARGET_EVALUATIONS = 20_000
TARGET_FIXES = 5_000

ROLE = RoleContext(account_id=ACCOUNT, role_name="bench")
SERVICE_LINKED = RoleContext(account_id=ACCOUNT, path="/aws-service-role/states.amazonaws.com/")
V = "2012-10-17"
PINS = {
    "ArnLike": {"aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:*"},
    "StringEquals": {"aws:SourceAccount": ACCOUNT},
}


def statement(service: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", **extra}


# (name, document, context): the shapes a sweep meets, in roughly the proportions of a real account.
MIX: list[tuple[str, Any, RoleContext]] = [
    (
        "compliant, AWS guide example",
        {"Version": V, "Statement": [statement(["states.amazonaws.com"], Condition=PINS)]},
        ROLE,
    ),
    (
        "compliant, URL-encoded as IAM returns it",
        quote(
            json.dumps({"Version": V, "Statement": [statement("states.amazonaws.com", Condition=PINS)]}, indent=2),
            safe="",
        ),
        ROLE,
    ),
    (
        "vulnerable, CDK default",
        {
            "Statement": [
                {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}}
            ],
            "Version": V,
        },
        ROLE,
    ),
    (
        "vulnerable, SAM one-element lists",
        {
            "Version": V,
            "Statement": [
                {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["states.amazonaws.com"]}}
            ],
        },
        ROLE,
    ),
    (
        "vulnerable, regional principal",
        {"Version": V, "Statement": [statement("states.eu-west-1.amazonaws.com")]},
        ROLE,
    ),
    (
        "mixed, Lambda and Step Functions",
        {"Version": V, "Statement": [statement(["lambda.amazonaws.com", "states.amazonaws.com"])]},
        ROLE,
    ),
    (
        "mixed, admins and Step Functions with Sid",
        {
            "Version": V,
            "Statement": [
                {
                    "Sid": "AdminsAndWorkflows",
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": f"arn:aws:iam::{ACCOUNT}:role/Admin",
                        "Service": ["states.amazonaws.com", "events.amazonaws.com"],
                    },
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                    "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
                }
            ],
        },
        ROLE,
    ),
    (
        "partial, account pinned only",
        {
            "Version": V,
            "Statement": [
                statement("states.amazonaws.com", Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})
            ],
        },
        ROLE,
    ),
    (
        "needs_review, foreign account",
        {
            "Version": V,
            "Statement": [
                statement("states.amazonaws.com", Condition={"StringEquals": {"aws:SourceAccount": "444455556666"}})
            ],
        },
        ROLE,
    ),
    (
        "needs_review, Fn::Sub principal",
        {"Version": V, "Statement": [statement([{"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}])]},
        ROLE,
    ),
    ("not_applicable, Lambda role", {"Version": V, "Statement": [statement("lambda.amazonaws.com")]}, ROLE),
    (
        "not_applicable, service-linked",
        {"Version": V, "Statement": [statement("states.amazonaws.com")]},
        SERVICE_LINKED,
    ),
]


def measure(
    operation: Callable[[Any, RoleContext], Any], cases: list[tuple[Any, RoleContext]], seconds: float
) -> tuple[int, float]:
    """Run ``operation`` over ``cases`` round after round for about ``seconds``; (operations, elapsed)."""
    for document, context in cases:  # warm caches (regexes, operator parsing) before timing
        operation(document, context)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for document, context in cases:
            operation(document, context)
        count += len(cases)
        now = time.perf_counter()
        if now >= deadline:
            return count, now - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        # One core, as a Lambda invocation effectively gets for this single-threaded work.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    verdicts = {name: evaluate(document, context).verdict.value for name, document, context in MIX}
    fixable = [(document, context) for name, document, context in MIX if verdicts[name] == Verdict.NON_COMPLIANT]
    evaluations, evaluation_time = measure(evaluate, [(d, c) for _, d, c in MIX], args.seconds)
    fixes, fix_time = measure(plan_fix, fixable, args.seconds)

    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "policies": len(MIX),
        "verdicts": verdicts,
        "evaluations_per_second": round(evaluations / evaluation_time),
        "fixes_per_second": round(fixes / fix_time),
        "fixable_policies": len(fixable),
        "targets": {"evaluations_per_second": TARGET_EVALUATIONS, "fixes_per_second": TARGET_FIXES},
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"Engine throughput, one core, Python {results['python']} on {results['machine']}, {len(MIX)} policies\n")
        rows = [
            (f"evaluate (all {len(MIX)})", evaluations, evaluation_time, "evaluations_per_second", TARGET_EVALUATIONS),
            (f"plan_fix (the {len(fixable)} fixable)", fixes, fix_time, "fixes_per_second", TARGET_FIXES),
        ]
        print("| measure | operations | seconds | per second | target |")
        print("|---|---:|---:|---:|---:|")
        for label, operations, elapsed, key, target in rows:
            print(f"| {label} | {operations:,} | {elapsed:.2f} | {results[key]:,} | {target:,} |")
    met = results["evaluations_per_second"] >= TARGET_EVALUATIONS and results["fixes_per_second"] >= TARGET_FIXES
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
