"""Engine throughput: evaluations and fixes per second on one core over a realistic mix of trust policies,
and the slowest evaluation of the most expensive documents we can build within the size quota.

Run: .venv/bin/python bench/bench_engine.py [--seconds S] [--json] [--worst-repeat N] [--worst-timeout S]
                                            [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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
TARGET_WORST_MS = 10.0
ROOT = Path(__file__).resolve().parent.parent

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


# --------------------------------------------------------------------------------------------------
# Worst case: the most expensive documents we know how to build, filled up to a size limit


def compact_size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False))


def fill(build: Callable[[int], Any], limit: int) -> Any:
    """``build(k)`` for the largest k whose document stays within ``limit`` compact characters."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if compact_size(build(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return build(low)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": V, "Statement": list(statements)}


def pinned_with(operator: str, source_arn: Any) -> dict[str, Any]:
    return statement(
        "states.amazonaws.com",
        Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}, operator: {"aws:SourceArn": source_arn}},
    )


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _arn_like_variants(count: int) -> list[str]:
    """``count`` spellings of ArnLike that differ only in case (operator names are case-insensitive)."""
    spellings = []
    for number in range(count):
        bits = [(number >> i) & 1 for i in range(7)]
        spellings.append("".join(c.upper() if bit else c.lower() for c, bit in zip("ArnLike", bits, strict=True)))
    return spellings


# (name, build(k)): each grows with k; the harness picks the largest k within the limit.
WORST: list[tuple[str, Callable[[int], Any]]] = [
    (
        "ArnLike aws:SourceArn, k stars in the service field",
        lambda k: policy(pinned_with("ArnLike", "arn:aws:" + "*" * k + f"x:*:{ACCOUNT}:*")),
    ),
    (
        "ArnEquals aws:SourceArn, k '*?' pairs in the service field",
        lambda k: policy(pinned_with("ArnEquals", "arn:aws:" + "*?" * k + f":*:{ACCOUNT}:*")),
    ),
    (
        "StringLike aws:SourceArn, k stars in the resource",
        lambda k: policy(pinned_with("StringLike", f"arn:aws:states:us-east-1:{ACCOUNT}:" + "*" * k)),
    ),
    (
        "ArnLike aws:SourceArn list, k values with 20 stars each",
        lambda k: policy(pinned_with("ArnLike", ["arn:aws:" + "*" * 20 + f"x:*:{ACCOUNT}:*"] * k)),
    ),
    (
        "ArnLike blocks in k spellings, 20-star values",
        lambda k: policy(
            statement(
                "states.amazonaws.com",
                Condition={
                    name: {"aws:SourceArn": "arn:aws:" + "*" * 20 + f"x:*:{ACCOUNT}:*"}
                    for name in _arn_like_variants(min(k, 128))
                },
            )
        ),
    ),
    (
        "Action 'sts:' + k stars + 'TagSession'",
        lambda k: policy(statement("states.amazonaws.com", Action="sts:" + "*" * k + "TagSession")),
    ),
    (
        "Action 'sts:' + k '*?' pairs + 'x'",
        lambda k: policy(statement("states.amazonaws.com", Action="sts:" + "*?" * k + "x")),
    ),
    (
        "k actions with 20 stars each",
        lambda k: policy(statement("states.amazonaws.com", Action=["sts:" + "*" * 20 + "TagSession"] * k)),
    ),
    (
        "k mixed statements without Sid (each split)",
        lambda k: policy(*[statement(["lambda.amazonaws.com", "states.amazonaws.com"]) for _ in range(k)]),
    ),
    (
        "k vulnerable statements",
        lambda k: policy(*[statement("states.amazonaws.com") for _ in range(k)]),
    ),
    (
        "Fn::Sub principal with k unclosed '${'",
        lambda k: policy(statement({"Fn::Sub": "states." + "${" * k})),
    ),
    (
        "value nested k deep (at most 500) in a condition",
        lambda k: policy(
            statement("states.amazonaws.com", Condition={"StringEquals": {"aws:SourceAccount": nested(min(k, 500))}})
        ),
    ),
]

_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext
request = json.loads(sys.stdin.read())
context = RoleContext(account_id=request["account"])
times, verdicts = [], set()
for form in (request["document"], json.dumps(request["document"])):
    for _ in range(request["repeat"]):
        start = time.perf_counter()
        evaluation = evaluate(form, context)
        times.append(time.perf_counter() - start)
    verdicts.add(evaluation.verdict.value)
times.sort()
result = {"max_ms": times[-1] * 1000, "median_ms": times[len(times) // 2] * 1000, "verdicts": sorted(verdicts)}
print(json.dumps(result))
"""


def measure_worst(code: Path, limits: list[int], repeat: int, timeout: float) -> list[dict[str, Any]]:
    """Each worst-case document at each limit, evaluated as a dict and as JSON text in a fresh interpreter.

    A fresh interpreter per document gives a timeout that works even when the engine is stuck in C code
    (a backtracking regex does not see signals), and keeps one document's caches from helping the next.
    """
    rows = []
    for limit in limits:
        for name, build in WORST:
            document = fill(build, limit)
            request = json.dumps({"account": ACCOUNT, "document": document, "repeat": repeat})
            row: dict[str, Any] = {"case": name, "limit": limit, "chars": compact_size(document)}
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(code)],
                    input=request,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=True,
                )
            except subprocess.TimeoutExpired:
                row.update(max_ms=None, median_ms=None, verdicts=[], timed_out=True)
            else:
                row.update(json.loads(done.stdout), timed_out=False)
            rows.append(row)
            shown = f">{timeout:.0f} s" if row["timed_out"] else f"{row['max_ms']:.2f} ms"
            print(f"  worst case {limit:>6,} chars: {name}: {shown}", file=sys.stderr)
    return rows


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
    parser.add_argument(
        "--worst-limits", default="2048,10240", help="sizes the worst cases fill (default: %(default)s)"
    )
    parser.add_argument(
        "--worst-repeat", type=int, default=20, help="evaluations per worst case and form (default: 20)"
    )
    parser.add_argument(
        "--worst-timeout", type=float, default=60.0, help="seconds before a worst case is given up (default: 60)"
    )
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose chalicelib the worst cases run (default: this one)"
    )
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        # One core, as a Lambda invocation effectively gets for this single-threaded work.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    verdicts = {name: evaluate(document, context).verdict.value for name, document, context in MIX}
    fixable = [(document, context) for name, document, context in MIX if verdicts[name] == Verdict.NON_COMPLIANT]
    evaluations, evaluation_time = measure(evaluate, [(d, c) for _, d, c in MIX], args.seconds)
    fixes, fix_time = measure(plan_fix, fixable, args.seconds)

    worst = measure_worst(
        args.code, [int(limit) for limit in args.worst_limits.split(",")], args.worst_repeat, args.worst_timeout
    )
    slowest = max((row["max_ms"] for row in worst if not row["timed_out"]), default=0.0)
    worst_met = not any(row["timed_out"] for row in worst) and slowest < TARGET_WORST_MS

    evaluations_per_second = round(evaluations / evaluation_time)
    fixes_per_second = round(fixes / fix_time)
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "policies": len(MIX),
        "verdicts": verdicts,
        "evaluations_per_second": evaluations_per_second,
        "fixes_per_second": fixes_per_second,
        "fixable_policies": len(fixable),
        "targets": {
            "evaluations_per_second": TARGET_EVALUATIONS,
            "fixes_per_second": TARGET_FIXES,
            "worst_case_ms": TARGET_WORST_MS,
        },
        "worst_case": {"max_ms": round(slowest, 3), "met": worst_met, "cases": worst},
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
        print(
            f"\nWorst cases: slowest evaluation of each document (dict and JSON text, {args.worst_repeat} runs each)\n"
        )
        print("| document | limit | chars | median | slowest | verdict |")
        print("|---|---:|---:|---:|---:|---|")
        for row in worst:
            if row["timed_out"]:
                median = slowest_shown = f"> {args.worst_timeout:.0f} s"
            else:
                median, slowest_shown = f"{row['median_ms']:.2f} ms", f"{row['max_ms']:.2f} ms"
            print(
                f"| {row['case']} | {row['limit']:,} | {row['chars']:,} | {median} | {slowest_shown} "
                f"| {', '.join(row['verdicts'])} |"
            )
        print(f"\nslowest: {slowest:.2f} ms (target: under {TARGET_WORST_MS:.0f} ms, no timeout)")
    met = evaluations_per_second >= TARGET_EVALUATIONS and fixes_per_second >= TARGET_FIXES and worst_met
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
