"""The scan benchmark's worker: one size measured in a fresh interpreter (bench/bench_scan.py starts it).

It times the floor (one paginated ListRoles) and deputy-guard's dry-run scan alternately, then the naive
scanner, against the loopback AWS the benchmark serves, and prints its figures as JSON: wall and CPU
time, AWS calls and HTTP attempts, the report's size and digest, and the scanning process's peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_scan import PAGE
from bench.harness import CallCounter, count_project_clients, quiet, use_fake_aws
from bench.mix import shapes


def expected_verdicts(account: str) -> Callable[[str], str | None]:
    """The verdict the mix gives a seeded role, from its name (``<prefix>-<index>``)."""
    by_prefix = {shape.prefix: shape.verdict for shape in shapes(account)}
    return lambda name: by_prefix.get(name.rsplit("-", 1)[0])


class Attempts:
    """HTTP attempts by ``service:Action`` (retries included), counted by botocore's ``before-send`` hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: Counter[str] = Counter()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send.*.*", self._count, unique_id=f"bench-attempts-{id(self)}")
        return client

    def _count(self, event_name: str, **_kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.sent[f"{service}:{operation}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.sent.items()))


class BytesReceived:
    """Response bytes by ``service:Action`` (the body botocore parsed), counted by the ``after-call`` hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("after-call.*.*", self._count, unique_id=f"bench-bytes-{id(self)}")
        return client

    def _count(self, event_name: str, http_response: Any = None, **_kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.received[f"{service}:{operation}"] += len(http_response.content) if http_response is not None else 0

    def total(self) -> int:
        with self._lock:
            return sum(self.received.values())


def since(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_mb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (Linux) in MB (10^6 bytes); None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's RSS high-water mark in MB: VmHWM since the last reset, else ru_maxrss."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def current_rss_mb() -> float:
    current = _status_mb("VmRSS")
    return current if current is not None else peak_rss_mb()


def run_floor(client: Any) -> tuple[float, int, int]:
    """The floor: one paginated ListRoles, pages of 1,000, as parsed by botocore; (seconds, roles, pages)."""
    start = time.perf_counter()
    roles = pages = 0
    kwargs: dict[str, Any] = {"PathPrefix": "/", "MaxItems": PAGE}
    while True:
        response = client.list_roles(**kwargs)
        roles += len(response["Roles"])
        pages += 1
        if not response.get("IsTruncated"):
            break
        kwargs["Marker"] = response["Marker"]
    return time.perf_counter() - start, roles, pages


def run_default_page_listing(client: Any) -> tuple[float, int, int]:
    """ListRoles in IAM's default page (100 roles, as boto3's paginator lists without a page size, and as
    general-purpose scanners do); (seconds, roles, pages). A reference, not the floor."""
    start = time.perf_counter()
    roles = pages = 0
    for page in client.get_paginator("list_roles").paginate():
        roles += len(page["Roles"])
        pages += 1
    return time.perf_counter() - start, roles, pages


def run_deputy_guard(deps: Any, profile: bool = False) -> tuple[float, Any, int]:
    """deputy-guard's own dry-run scan: (seconds, report, log lines written)."""
    from chalicelib.service.scan import scan

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    with quiet() as sink:
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = scan(deps, dry_run=True)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - start
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    assert report.complete and not report.next_token
    return elapsed, report, sink.lines


def api_body(report: Any) -> str:
    """The POST /scans body as the Lambda sends it: Chalice serialises a route's dict compactly."""
    return json.dumps(report.to_dict(), separators=(",", ":"))


def report_figures(report: Any, api: str, expected: Callable[[str], str | None]) -> dict[str, Any]:
    """The report's sizes (API body, `scan --format json`) and whether each role got its expected verdict."""
    body = report.to_dict()
    cli = json.dumps(body, indent=2)  # deputy-guard scan --format json
    rows = body["results"]
    keyed = sorted(
        (r["role_name"], r["verdict"], r["action"], sorted(p["code"] for p in r.get("problems", []))) for r in rows
    )
    finding = ("non_compliant", "needs_review")
    return {
        "api_bytes": len(api.encode()),
        "cli_bytes": len(cli.encode()),
        "rows": len(rows),
        "finding_rows": sum(r["verdict"] in finding for r in rows),
        "finding_fields": sorted({k for r in rows if r["verdict"] in finding for k in r}),
        "other_fields": sorted({k for r in rows if r["verdict"] not in finding for k in r}),
        "verdict_mismatches": sum(r["verdict"] != expected(r["role_name"]) for r in rows),
        # Names, verdicts, actions and problem codes of every row: equal digests, equal reports (the
        # seeded role ids fix IAM's listing order, so even the per-run cap falls on the same roles).
        "digest": hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16],
        "verdict_digest": hashlib.sha256(json.dumps([k[:2] for k in keyed]).encode()).hexdigest()[:16],
        "actions": dict(sorted(Counter(r["action"] for r in rows).items())),
    }


@dataclass
class NaiveRun:
    list_seconds: float
    get_seconds: float
    roles: int
    read: int
    verdicts: Counter[str]
    mismatches: int


def run_naive(client: Any, expected: Callable[[str], str | None], sample: int) -> NaiveRun:
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
        mismatches += verdict != expected(name)
    done = time.perf_counter()
    return NaiveRun(listed - start, done - listed, len(names), len(chosen), verdicts, mismatches)


def warm(client: Any, name: str) -> None:
    """Load the service model and open the connection before timing (every scanner gets the same)."""
    client.list_roles(MaxItems=1)
    client.get_account_authorization_details(Filter=["Role"], MaxItems=1)
    client.get_role(RoleName=name)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One size, in a fresh interpreter: floor and scan alternately, then the naive scanner."""
    use_fake_aws(spec["endpoint"])
    os.environ["DEPUTY_GUARD_MODE"] = "dry-run"
    os.environ["LOG_LEVEL"] = "INFO"  # as deployed: a decision line per finding, written to a null sink
    if spec.get("concurrency"):
        os.environ["DEPUTY_GUARD_SCAN_CONCURRENCY"] = str(spec["concurrency"])

    import boto3
    from botocore.config import Config

    from chalicelib.adapters import aws
    from chalicelib.adapters.iam import IamGateway
    from chalicelib.domain.settings import load_settings
    from chalicelib.runtime.wiring import build_deps
    from chalicelib.service import scan as scan_module

    expected = expected_verdicts(spec["account"])
    deps = build_deps(load_settings(os.environ), idempotent=False)
    counter = CallCounter()
    count_project_clients(counter)
    attempts = Attempts()
    client = attempts.attach(aws.make_client("iam"))
    warm(client, spec["first_role"])

    received = BytesReceived()
    received.attach(client)
    # The floor lists with boto3's defaults, as any boto3 scanner would (timestamps parsed into datetimes);
    # the same listing on deputy-guard's IAM client (timestamps kept as text) is timed beside it.
    floor_client = received.attach(attempts.attach(boto3.session.Session().client("iam", region_name="us-east-1")))
    warm(floor_client, spec["first_role"])
    text_floors: list[float] = []
    # The default listing (GetAccountAuthorizationDetails: roles with their tags) and the fallback
    # (ListRoles, then ListRoleTags for each flagged role), on the same client, alternately.
    listings = {"scan": deps, "tag_reads": replace(deps, iam=IamGateway(client, role_details=False))}
    # One untimed run of each before the clock starts (lazy imports, first-use caches), as the clients
    # are warmed above: the rounds then compare steady states.
    run_floor(floor_client)
    run_floor(client)
    for listed in listings.values():
        run_deputy_guard(listed)
    baseline = current_rss_mb()
    floors: list[float] = []
    floor_cpu: list[float] = []
    floor_bytes = 0
    timed: dict[str, dict[str, Any]] = {key: {"rounds": [], "cpu": []} for key in listings}
    peak = 0.0
    default_pages: list[float] = []
    default_page_count = 0
    for index in range(spec["rounds"]):
        steps = ("floor", "scan", "tag_reads") if index % 2 == 0 else ("tag_reads", "scan", "floor")
        for step in (*steps, "default_page") if spec.get("default_page") else steps:
            if step == "default_page":
                seconds, roles, default_page_count = run_default_page_listing(client)
                assert roles == spec["size"], (roles, spec["size"])
                default_pages.append(seconds)
                continue
            if step == "floor":
                cpu, before = time.process_time(), received.total()
                seconds, roles, pages = run_floor(floor_client)
                floor_cpu.append(time.process_time() - cpu)
                floor_bytes = received.total() - before
                assert roles == spec["size"], (roles, spec["size"])
                floors.append(seconds)
                text_floors.append(run_floor(client)[0])
                continue
            counter.reset()
            sent = attempts.snapshot()
            before = received.total()
            reset_peak_rss()
            profile = spec.get("profile", False) and index == spec["rounds"] - 1 and step == "scan"
            cpu = time.process_time()
            seconds, report, log_lines = run_deputy_guard(listings[step], profile=profile)
            timed[step]["cpu"].append(time.process_time() - cpu)
            api = api_body(report)  # inside the measured window, as the API serialises it
            if step == "scan":
                peak = max(peak, peak_rss_mb())
            figures = report_figures(report, api, expected)
            del api
            timed[step]["rounds"].append(seconds)
            timed[step].update(
                {
                    "calls": counter.snapshot(),
                    "http_requests": since(attempts.snapshot(), sent),
                    "bytes_received": received.total() - before,
                    "summary": {k: v for k, v in report.summary.items() if v},
                    "log_lines": log_lines,
                    "report": figures,
                }
            )
            del report
    concurrency = getattr(deps.settings, "scan_concurrency", None) or getattr(
        scan_module, "SCAN_READ_CONCURRENCY", None
    )

    naive_counter = CallCounter()
    naive_attempts = Attempts()
    naive_client = naive_attempts.attach(
        naive_counter.attach(
            boto3.session.Session().client(
                "iam", region_name="us-east-1", config=Config(retries={"mode": "standard", "max_attempts": 6})
            )
        )
    )
    warm(naive_client, spec["first_role"])
    naive_counter.reset()
    naive_sent = naive_attempts.snapshot()
    naive = run_naive(naive_client, expected, spec["naive_sample"])
    last = {k: v for k, v in timed["scan"].items() if k not in ("rounds", "cpu")}
    fallback = timed["tag_reads"]
    return {
        "floor_rounds": [round(s, 3) for s in floors],
        "scan_rounds": [round(s, 3) for s in timed["scan"]["rounds"]],
        # CPU seconds of the scanning process (every thread): what no overlap can hide.
        "floor_cpu": round(statistics.median(floor_cpu), 3),
        "scan_cpu": round(statistics.median(timed["scan"]["cpu"]), 3),
        "floor_bytes": floor_bytes,
        "text_floor_rounds": [round(s, 3) for s in text_floors],
        "tag_reads": {
            "rounds": [round(s, 3) for s in fallback["rounds"]],
            "cpu": round(statistics.median(fallback["cpu"]), 3),
            **{k: v for k, v in fallback.items() if k not in ("rounds", "cpu")},
        },
        "floor_pages": pages,
        "default_page_rounds": [round(s, 3) for s in default_pages],
        "default_page_pages": default_page_count,
        "scan_concurrency": concurrency,
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(peak, 1),
        **last,
        "attempts_total": sum(attempts.snapshot().values()) + sum(naive_attempts.snapshot().values()),
        "naive": {
            "list_seconds": naive.list_seconds,
            "get_seconds": naive.get_seconds,
            "roles": naive.roles,
            "read": naive.read,
            "mismatches": naive.mismatches,
            "calls": naive_counter.snapshot(),
            "http_requests": since(naive_attempts.snapshot(), naive_sent),
        },
    }
