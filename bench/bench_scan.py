"""Scan benchmark: AWS calls and wall time of a dry-run scan against moto's server with 20 ms per request,
beside a naive scanner (ListRoles for names, then GetRole for every role) in the same run.

Run: .venv/bin/python bench/bench_scan.py [--sizes 1000,10000] [--latency-ms 20] [--naive-sample 1000] [--json]

Every AWS request crosses real HTTP on 127.0.0.1 and waits ``--latency-ms`` in the server before moto
handles it. Roles are seeded through moto's backend in this process (no HTTP, no latency), so seeding
does not dominate the run. The naive scanner GetRoles every role; above ``--naive-sample`` roles it
GetRoles an evenly spaced sample of that many and scales its GetRole time to all of them (say
``--naive-sample 0`` to run it in full: about 25 ms per role, over 4 minutes at 10,000 roles).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import CallCounter, LatencyAws, count_project_clients, machine, quiet, use_fake_aws, versions

PAGE = 1000  # what deputy-guard asks ListRoles for (IAM's maximum MaxItems)
TARGET_SPEEDUP = 10.0
TARGET_SPEEDUP_AT = 10_000
V = "2012-10-17"


# --- the account ------------------------------------------------------------------------------------


def _assume(principal: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": V, "Statement": list(statements)}


@dataclass(frozen=True)
class Shape:
    """One kind of role in the mix: its name prefix, path, trust document, tags and expected verdict."""

    prefix: str
    verdict: str
    document: dict[str, Any]
    path: str = "/"
    tags: tuple[tuple[str, str], ...] = ()


def shapes(account: str) -> list[Shape]:
    """One block of 100 roles: 70 unrelated, 20 compliant Step Functions roles, 8 vulnerable, 2 needs_review."""
    states = {"Service": "states.amazonaws.com"}
    pins = {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:us-east-1:{account}:stateMachine:*"},
    }
    owner = (("owner", "data-platform"),)
    block: list[tuple[int, Shape]] = [
        # 70 unrelated (not_applicable): no Step Functions principal, or service-linked.
        (40, Shape("lambda-fn", "not_applicable", _doc(_assume({"Service": "lambda.amazonaws.com"})), tags=owner)),
        (15, Shape("ecs-task", "not_applicable", _doc(_assume({"Service": "ecs-tasks.amazonaws.com"})))),
        (12, Shape("ec2-node", "not_applicable", _doc(_assume({"Service": "ec2.amazonaws.com"})), path="/infra/")),
        (
            2,
            Shape(
                "edge-fn",
                "not_applicable",
                _doc(_assume({"Service": ["lambda.amazonaws.com", "edgelambda.amazonaws.com"]})),
                path="/service-role/",
            ),
        ),
        (
            1,
            Shape(
                "AWSServiceRoleForStepFunctions",
                "not_applicable",
                _doc(_assume(states)),
                path="/aws-service-role/states.amazonaws.com/",
            ),
        ),
        # 20 compliant Step Functions roles.
        (12, Shape("sfn-ok", "compliant", _doc(_assume(states, Condition=pins)), tags=owner)),
        (
            5,
            Shape(
                "sfn-ok-regional",
                "compliant",
                _doc(_assume({"Service": ["states.eu-west-1.amazonaws.com"]}, Condition=pins)),
                path="/service-role/",
            ),
        ),
        (
            3,
            Shape(
                "sfn-ok-split",
                "compliant",
                _doc(_assume({"Service": "lambda.amazonaws.com"}), _assume(states, Condition=pins)),
            ),
        ),
        # 8 vulnerable (non_compliant): the shapes CDK, SAM and hand-written templates produce.
        (3, Shape("sfn-cdk", "non_compliant", _doc(_assume(states)), tags=owner)),
        (
            2,
            Shape(
                "sfn-sam",
                "non_compliant",
                {
                    "Version": V,
                    "Statement": [{**_assume({"Service": ["states.amazonaws.com"]}), "Action": ["sts:AssumeRole"]}],
                },
                tags=(("aws:cloudformation:stack-name", "orders-prod"), ("team", "orders")),
            ),
        ),
        (
            1,
            Shape(
                "sfn-mixed",
                "non_compliant",
                _doc(_assume({"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]})),
            ),
        ),
        (
            2,
            Shape(
                "sfn-partial",
                "non_compliant",
                _doc(_assume(states, Condition={"StringEquals": {"aws:SourceAccount": account}})),
                path="/teams/analytics/",
            ),
        ),
        # 2 needs_review: a foreign account pinned, or anyone allowed.
        (
            1,
            Shape(
                "sfn-partner",
                "needs_review",
                _doc(_assume(states, Condition={"StringEquals": {"aws:SourceAccount": "444455556666"}})),
            ),
        ),
        (1, Shape("sfn-open", "needs_review", _doc(_assume({"Service": "states.amazonaws.com", "AWS": "*"})))),
    ]
    expanded = [shape for count, shape in block for _ in range(count)]
    assert len(expanded) == 100, len(expanded)
    return expanded


def check_shapes(block: list[Shape], account: str) -> None:
    """Every shape must get the verdict the mix says, or the benchmark measures the wrong thing."""
    from chalicelib.domain.engine import evaluate
    from chalicelib.domain.models import RoleContext

    for shape in {s.prefix: s for s in block}.values():
        context = RoleContext(account_id=account, path=shape.path, role_name=shape.prefix)
        verdict = evaluate(shape.document, context).verdict.value
        if verdict != shape.verdict:
            raise SystemExit(f"mix error: {shape.prefix} evaluates {verdict}, expected {shape.verdict}")


def seed(backend: Any, block: list[Shape], start: int, stop: int) -> dict[str, str]:
    """Create roles ``start``..``stop``-1 in moto's IAM backend directly; returns name -> expected verdict."""
    expected = {}
    texts = {id(s): json.dumps(s.document) for s in block}
    for index in range(start, stop):
        shape = block[index % len(block)]
        name = f"{shape.prefix}-{index:05d}"
        tags = [{"Key": k, "Value": v} for k, v in shape.tags]
        backend.create_role(name, texts[id(shape)], shape.path, None, "", tags, None)
        expected[name] = shape.verdict
    return expected


# --- the two scanners ------------------------------------------------------------------------------


def run_deputy_guard(deps: Any) -> tuple[float, dict[str, int], int]:
    """deputy-guard's own dry-run scan: (seconds, verdict summary, log lines written)."""
    from chalicelib.service.scan import scan

    with quiet() as sink:
        start = time.perf_counter()
        report = scan(deps, dry_run=True)
        elapsed = time.perf_counter() - start
    assert report.complete and not report.next_token
    return elapsed, report.summary, sink.lines


@dataclass
class NaiveRun:
    list_seconds: float
    get_seconds: float
    roles: int
    read: int
    verdicts: Counter[str]
    mismatches: int


def run_naive(client: Any, expected: dict[str, str], sample: int) -> NaiveRun:
    """ListRoles for the names, then GetRole and evaluate each role (an evenly spaced sample above ``sample``)."""
    from chalicelib.domain.engine import evaluate
    from chalicelib.domain.models import RoleContext

    start = time.perf_counter()
    names: list[str] = []
    for page in client.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": PAGE}):
        names.extend(role["RoleName"] for role in page["Roles"])
    listed = time.perf_counter()
    step = max(1, math.ceil(len(names) / sample)) if sample else 1
    chosen = names[::step]
    verdicts: Counter[str] = Counter()
    mismatches = 0
    for name in chosen:
        role = client.get_role(RoleName=name)["Role"]
        tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
        verdict = evaluate(role["AssumeRolePolicyDocument"], RoleContext.from_role_arn(role["Arn"], tags)).verdict.value
        verdicts[verdict] += 1
        mismatches += verdict != expected.get(name)
    done = time.perf_counter()
    return NaiveRun(listed - start, done - listed, len(names), len(chosen), verdicts, mismatches)


def warm(client: Any, name: str) -> None:
    """Load the service model and open the connection before timing (both scanners get the same)."""
    client.list_roles(MaxItems=1)
    client.get_role(RoleName=name)


# --- one size ---------------------------------------------------------------------------------------


def measure_size(
    size: int,
    expected: dict[str, str],
    server: LatencyAws,
    deps: Any,
    counter: CallCounter,
    naive_client: Any,
    naive_counter: CallCounter,
    sample: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    verdicts = Counter(expected.values())
    flagged = verdicts["non_compliant"] + verdicts["needs_review"]

    counter.reset()
    server.reset_requests()
    say(f"  deputy-guard scan of {size:,} roles ...")
    dg_seconds, summary, log_lines = run_deputy_guard(deps)
    dg_calls = counter.snapshot()
    dg_requests = server.requests()

    naive_counter.reset()
    server.reset_requests()
    say(f"  naive scan of {size:,} roles ...")
    naive = run_naive(naive_client, expected, sample)
    naive_measured_calls = naive_counter.snapshot()
    naive_requests = server.requests()
    scaled = naive.read < naive.roles
    per_get = naive.get_seconds / naive.read
    naive_seconds = naive.list_seconds + per_get * naive.roles
    naive_calls = dict(naive_measured_calls)
    naive_calls["iam:GetRole"] = naive.roles  # the naive scanner reads every role, by definition

    expected_pages = math.ceil(size / PAGE)
    list_calls = dg_calls.get("iam:ListRoles", 0)
    get_calls = dg_calls.get("iam:GetRole", 0)
    other_calls = {k: v for k, v in dg_calls.items() if k not in ("iam:ListRoles", "iam:GetRole")}
    calls_met = list_calls == expected_pages and get_calls <= flagged and not other_calls
    ratio = naive_seconds / dg_seconds
    return {
        "roles": size,
        "mix": dict(sorted(verdicts.items())),
        "flagged": flagged,
        "deputy_guard": {
            "seconds": round(dg_seconds, 3),
            "calls": dg_calls,
            "http_requests": dg_requests,
            "summary": {k: v for k, v in summary.items() if v},
            "summary_matches_mix": {k: v for k, v in summary.items() if v} == dict(verdicts),
            "log_lines": log_lines,
        },
        "naive": {
            "seconds": round(naive_seconds, 3),
            "scaled_from_sample": scaled,
            "roles_read": naive.read,
            "list_seconds": round(naive.list_seconds, 3),
            "get_role_ms_each": round(per_get * 1000, 3),
            "calls": naive_calls,
            "measured_calls": naive_measured_calls,
            "http_requests": naive_requests,
            "verdict_mismatches": naive.mismatches,
            "page_size": PAGE,
        },
        "ratio": round(ratio, 2),
        "call_ratio": round(sum(naive_calls.values()) / max(1, sum(dg_calls.values())), 2),
        "targets": {
            "list_roles_calls": expected_pages,
            "max_get_role_calls": flagged,
            "calls_met": calls_met,
            "pages_verified": list_calls == expected_pages
            and naive_measured_calls.get("iam:ListRoles") == expected_pages,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated role counts (default: 1000,10000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added latency per AWS request (default: 20)")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=1000,
        help="GetRole at most this many roles in the naive scan and scale to all (0: read all; default: 1000)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    started = time.perf_counter()
    server = LatencyAws(args.latency_ms / 1000).start()
    try:
        use_fake_aws(server.url)
        os.environ["DEPUTY_GUARD_MODE"] = "dry-run"
        os.environ["LOG_LEVEL"] = "INFO"  # as deployed: one decision line per role, written to a null sink

        import boto3
        from botocore.config import Config
        from moto.backends import get_backend
        from moto.core.models import DEFAULT_ACCOUNT_ID

        from chalicelib.adapters import aws
        from chalicelib.domain.settings import load_settings
        from chalicelib.runtime.wiring import build_deps

        account = DEFAULT_ACCOUNT_ID
        block = shapes(account)
        check_shapes(block, account)
        backend = get_backend("iam")[account]["global"]

        aws.reset_clients()
        counter = CallCounter()
        deps = build_deps(load_settings(os.environ), idempotent=False)
        count_project_clients(counter)
        naive_counter = CallCounter()
        naive_client = naive_counter.attach(
            boto3.session.Session().client(
                "iam", region_name="us-east-1", config=Config(retries={"mode": "standard", "max_attempts": 6})
            )
        )

        expected: dict[str, str] = {}
        results = []
        seed_seconds = 0.0
        for size in sizes:
            begin = time.perf_counter()
            expected.update(seed(backend, block, len(expected), size))
            seed_seconds += time.perf_counter() - begin
            say(f"seeded {size:,} roles in moto ({time.perf_counter() - begin:.1f} s)")
            first = next(iter(expected))
            warm(aws.make_client("iam"), first)
            warm(naive_client, first)
            results.append(
                measure_size(size, expected, server, deps, counter, naive_client, naive_counter, args.naive_sample, say)
            )
    finally:
        server.stop()

    biggest = next((r for r in results if r["roles"] == TARGET_SPEEDUP_AT), None)
    output = {
        "machine": machine(),
        "versions": versions("moto", "boto3", "botocore"),
        "latency_ms": args.latency_ms,
        "page_size": PAGE,
        "naive_sample": args.naive_sample,
        "seed_seconds": round(seed_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
        "sizes": results,
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "speedup_at": TARGET_SPEEDUP_AT,
            "speedup_met": None if biggest is None else biggest["ratio"] >= TARGET_SPEEDUP,
            "calls_met": all(r["targets"]["calls_met"] for r in results),
        },
    }
    consistent = all(
        r["deputy_guard"]["summary_matches_mix"] and r["naive"]["verdict_mismatches"] == 0 for r in results
    )
    output["verdicts_consistent"] = consistent
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(render(output))
    if not consistent:
        return 2
    met = output["targets"]["calls_met"] and output["targets"]["speedup_met"] is not False
    return 0 if met else 1


def render(output: dict[str, Any]) -> str:
    """A markdown table of the run (also used by run_all.py)."""
    lines = [
        "| roles | scanner | wall time | AWS calls | ratio (naive / deputy-guard) |",
        "|---:|---|---:|---|---:|",
    ]
    for r in output["sizes"]:
        dg, naive = r["deputy_guard"], r["naive"]
        scaled = f" (GetRole time scaled from {naive['roles_read']:,} reads)" if naive["scaled_from_sample"] else ""
        lines.append(f"| {r['roles']:,} | deputy-guard | {dg['seconds']:.2f} s | {_calls(dg['calls'])} | |")
        lines.append(
            f"| {r['roles']:,} | naive | {naive['seconds']:.2f} s{scaled} | {_calls(naive['calls'])} "
            f"| **{r['ratio']:.1f}x** time, {r['call_ratio']:.1f}x calls |"
        )
    return "\n".join(lines)


def _calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in calls.items()) or "none"


if __name__ == "__main__":
    raise SystemExit(main())
