"""Scan benchmark: a dry-run scan against moto's server with 20 ms per request, beside the floor (one
paginated ListRoles) and a naive scanner (ListRoles for names, then GetRole for every role), same seed,
same run.

Run: .venv/bin/python bench/bench_scan.py [--sizes 1000,10000] [--latency-ms 20] [--rounds 3]
         [--naive-sample 1000] [--concurrency N] [--default-page] [--profile] [--json]

Every AWS request crosses real HTTP on 127.0.0.1 and waits ``--latency-ms`` in the server before moto
handles it. Roles are seeded through moto's backend in this process (no HTTP, no latency), so seeding
does not dominate the run. Each size is then measured by a fresh interpreter (a worker), as a Lambda
would scan: it pays for its own work only, shares no interpreter lock with the server, and its peak RSS
is the scanner's, not moto's. The worker times the floor and the scan alternately, ``--rounds`` times
each, and reports medians. The naive scanner GetRoles every role; above ``--naive-sample`` roles it
GetRoles an evenly spaced sample of that many and scales its GetRole time to all of them (say
``--naive-sample 0`` to run it in full: about 25 ms per role, over 4 minutes at 10,000 roles).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fastaws import MANAGEMENT, FastAws
from bench.harness import LatencyAws, machine, use_fake_aws, versions
from bench.mix import check_shapes, seed, shapes, world

PAGE = 1000  # what deputy-guard asks ListRoles and GetAccountAuthorizationDetails for (IAM's maximum)
LISTING = "GetAccountAuthorizationDetails"  # the dry run's listing: roles with their tags
TARGET_SPEEDUP = 10.0
TARGET_SPEEDUP_AT = 10_000
TARGET_FLOOR_RATIO = 1.3  # on fastaws: the dry-run scan within 1.3x one paginated ListRoles, every size and mix
TARGET_PEAK_RSS_MB = 100.0  # the scanning process, at TARGET_RSS_AT roles (MB = 10^6 bytes)
TARGET_RSS_AT = 10_000
WORKER_TIMEOUT = 1500


# --- the server -----------------------------------------------------------------------------------


def lighten_moto() -> None:
    """Take out two costs of moto's server that IAM does not have (in this process only).

    moto routes every request by listing its own package directory, and finds a role by name with a scan
    of every role, three times per GetRole. All of it runs under the server's one interpreter lock, so it
    queues concurrent requests behind each other, which IAM, served by a fleet, does not: at 10,000 roles
    the two made moto's own work per GetRole about twice the rest of it. Replaced here by a cached list
    and a name index that is rebuilt whenever it misses (so created and deleted roles stay exact).
    """
    from moto import backends
    from moto.iam.models import IAMBackend

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    linear = IAMBackend.get_role

    def get_role(self: Any, role_name: str) -> Any:
        index = self.__dict__.get("_bench_role_index")
        role = index.get(role_name) if index is not None else None
        if role is None or self.roles.get(role.id) is not role or role.name != role_name:
            index = {r.name: r for r in self.roles.values()}
            self.__dict__["_bench_role_index"] = index
            role = index.get(role_name)
            if role is None:
                return linear(self, role_name)  # moto's own NoSuchEntity
        return role

    IAMBackend.get_role = get_role  # type: ignore[method-assign]


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- one size ---------------------------------------------------------------------------------------


def measure_size(
    size: int,
    expected: dict[str, str],
    server: LatencyAws | FastAws,
    spec: dict[str, Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    verdicts = Counter(expected.values())
    flagged = verdicts["non_compliant"] + verdicts["needs_review"]

    server.reset_requests()
    say(f"  floor and deputy-guard scan of {size:,} roles ({spec['rounds']} rounds each), then the naive scan ...")
    out = run_worker({**spec, "size": size, "first_role": next(iter(expected))})
    server_total = sum(server.requests().values())

    floor_seconds = statistics.median(out["floor_rounds"])
    dg_seconds = statistics.median(out["scan_rounds"])
    naive = out["naive"]
    scaled = naive["read"] < naive["roles"]
    per_get = naive["get_seconds"] / naive["read"]
    naive_seconds = naive["list_seconds"] + per_get * naive["roles"]
    naive_calls = dict(naive["calls"])
    naive_calls["iam:GetRole"] = naive["roles"]  # the naive scanner reads every role, by definition

    dg_calls = out["calls"]
    expected_pages = math.ceil(size / PAGE)
    # moto answers GetAccountAuthorizationDetails in one page whatever its size; IAM and fastaws page it.
    listing_pages = 1 if spec["aws"] == "moto" else expected_pages
    listing_calls = dg_calls.get(f"iam:{LISTING}", 0)
    per_role_calls = {k: v for k, v in dg_calls.items() if k != f"iam:{LISTING}"}
    calls_met = listing_calls == listing_pages and not per_role_calls
    fallback = out["tag_reads"]
    fallback_calls = fallback["calls"]
    list_calls = fallback_calls.get("iam:ListRoles", 0)
    # The fallback reads only the tags of the roles the listing flags (ListRoleTags), one each at most.
    tag_reads = fallback_calls.get("iam:ListRoleTags", 0)
    other_calls = {k: v for k, v in fallback_calls.items() if k not in ("iam:ListRoles", "iam:ListRoleTags")}
    fallback_calls_met = list_calls == expected_pages and tag_reads <= flagged and not other_calls
    floor_ratio = dg_seconds / floor_seconds
    fallback_seconds = statistics.median(fallback["rounds"])
    report = out["report"]
    target_ratio = TARGET_FLOOR_RATIO if spec["aws"] == "fastaws" else None
    return {
        "roles": size,
        "flagged_percent": spec["flagged_percent"],
        "mix": dict(sorted(verdicts.items())),
        "flagged": flagged,
        "floor": {
            "seconds": round(floor_seconds, 3),
            "rounds": out["floor_rounds"],
            "pages": out["floor_pages"],
            "cpu_seconds": out["floor_cpu"],
            "bytes_received": out["floor_bytes"],
            "text_timestamps_seconds": round(statistics.median(out["text_floor_rounds"]), 3),
        },
        "deputy_guard": {
            "seconds": round(dg_seconds, 3),
            "rounds": out["scan_rounds"],
            "cpu_seconds": out["scan_cpu"],
            "bytes_received": out["bytes_received"],
            "floor_ratio": round(floor_ratio, 2),
            "round_ratios": [round(s / f, 2) for s, f in zip(out["scan_rounds"], out["floor_rounds"], strict=True)],
            "scan_concurrency": out["scan_concurrency"],
            "calls": dg_calls,
            "http_requests": out["http_requests"],
            "summary": out["summary"],
            "summary_matches_mix": out["summary"] == dict(verdicts),
            "verdict_mismatches": report["verdict_mismatches"],
            "roles_reported": report["rows"],
            "digest": report["digest"],
            "verdict_digest": report["verdict_digest"],
            "actions": report["actions"],
            "log_lines": out["log_lines"],
            "report_api_bytes": report["api_bytes"],
            "report_cli_bytes": report["cli_bytes"],
            "finding_fields": report["finding_fields"],
            "other_fields": report["other_fields"],
            "rss_baseline_mb": out["rss_baseline_mb"],
            "rss_peak_mb": out["rss_peak_mb"],
        },
        "tag_reads": {
            "seconds": round(fallback_seconds, 3),
            "rounds": fallback["rounds"],
            "cpu_seconds": fallback["cpu"],
            "bytes_received": fallback["bytes_received"],
            "floor_ratio": round(fallback_seconds / floor_seconds, 2),
            "calls": fallback_calls,
            "calls_met": fallback_calls_met,
            "summary": fallback["summary"],
            "verdict_mismatches": fallback["report"]["verdict_mismatches"],
            # Names and verdicts: which roles a dry run's fix cap reaches depends on the listing's order,
            # and moto orders its two listings differently (fastaws lists both in RoleId order).
            "same_verdicts": fallback["report"]["verdict_digest"] == report["verdict_digest"],
            "same_report": fallback["report"]["digest"] == report["digest"],
        },
        "naive": {
            "seconds": round(naive_seconds, 3),
            "scaled_from_sample": scaled,
            "roles_read": naive["read"],
            "list_seconds": round(naive["list_seconds"], 3),
            "get_role_ms_each": round(per_get * 1000, 3),
            "calls": naive_calls,
            "measured_calls": naive["calls"],
            "http_requests": naive["http_requests"],
            "verdict_mismatches": naive["mismatches"],
            "page_size": PAGE,
        },
        "default_page_listing": (
            {
                "seconds": round(statistics.median(out["default_page_rounds"]), 3),
                "rounds": out["default_page_rounds"],
                "pages": out["default_page_pages"],
                "scan_ratio": round(dg_seconds / statistics.median(out["default_page_rounds"]), 2),
            }
            if out["default_page_rounds"]
            else None
        ),
        "server_requests": server_total,
        "server_matches_clients": server_total == out["attempts_total"],
        "ratio": round(naive_seconds / dg_seconds, 2),
        "call_ratio": round(sum(naive_calls.values()) / max(1, sum(dg_calls.values())), 2),
        "targets": {
            "listing_calls": listing_pages,
            "calls_met": calls_met,
            "floor_ratio": target_ratio,
            "floor_ratio_met": None if target_ratio is None else floor_ratio <= target_ratio,
            "pages_verified": naive["calls"].get("iam:ListRoles") == expected_pages
            and out["floor_pages"] == expected_pages
            and list_calls == expected_pages,
        },
    }


def measure_on_moto(
    args: argparse.Namespace, sizes: list[int], mixes: list[int], spec: dict[str, Any], say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], float]:
    """Each mix on moto's server: roles seeded through its backend in this process, sizes one on another."""
    lighten_moto()
    server = LatencyAws(args.latency_ms / 1000, keep_alive=True).start()
    results = []
    seed_seconds = 0.0
    try:
        use_fake_aws(server.url)
        from moto.backends import get_backend
        from moto.moto_api._internal import mock_random

        backend = get_backend("iam")[MANAGEMENT]["global"]
        for flagged in mixes:
            block = shapes(MANAGEMENT, flagged)
            check_shapes(block, MANAGEMENT)
            backend.roles.clear()
            expected: dict[str, str] = {}
            for size in sizes:
                begin = time.perf_counter()
                # Role ids decide the order ListRoles returns roles in: seeded, every run lists the same account.
                mock_random.seed(f"{args.seed}:{size}")
                expected.update(seed(backend, block, len(expected), size))
                seed_seconds += time.perf_counter() - begin
                say(f"seeded {size:,} roles, {flagged} % flagged, in moto ({time.perf_counter() - begin:.1f} s)")
                run = {**spec, "endpoint": server.url, "flagged_percent": flagged}
                results.append(measure_size(size, expected, server, run, say))
    finally:
        server.stop()
    return results, seed_seconds


def measure_on_fastaws(
    args: argparse.Namespace, sizes: list[int], mixes: list[int], spec: dict[str, Any], say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], float]:
    """Each mix and size on its own fastaws world (a world is fixed once served)."""
    results = []
    seed_seconds = 0.0
    for flagged in mixes:
        block = shapes(MANAGEMENT, flagged)
        check_shapes(block, MANAGEMENT)
        for size in sizes:
            begin = time.perf_counter()
            served, expected = world(MANAGEMENT, block, size)
            server = FastAws(served, args.latency_ms, server=args.fastaws)
            seed_seconds += time.perf_counter() - begin
            say(f"fastaws serves {size:,} roles, {flagged} % flagged ({time.perf_counter() - begin:.1f} s)")
            try:
                use_fake_aws(server.url)
                run = {**spec, "endpoint": server.url, "flagged_percent": flagged}
                results.append(measure_size(size, expected, server, run, say))
            finally:
                server.stop()
    return results, seed_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated role counts (default: 1000,10000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added latency per AWS request (default: 20)")
    parser.add_argument("--rounds", type=int, default=3, help="floor and scan runs per size; medians (default: 3)")
    parser.add_argument("--seed", type=int, default=14, help="moto's random seed, hence IAM's order (default: 14)")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=1000,
        help="GetRole at most this many roles in the naive scan and scale to all (0: read all; default: 1000)",
    )
    parser.add_argument(
        "--concurrency", type=int, help="DEPUTY_GUARD_SCAN_CONCURRENCY for the scan (default: deputy-guard's)"
    )
    parser.add_argument(
        "--default-page",
        action="store_true",
        help="also time ListRoles in IAM's default page of 100 each round (a reference beside the floor)",
    )
    parser.add_argument(
        "--aws", choices=("fastaws", "moto"), default="fastaws", help="the AWS stand-in (default: fastaws)"
    )
    parser.add_argument("--fastaws", type=Path, help="fastaws's server.py (default: the shared tools' copy)")
    parser.add_argument("--flagged", default="10,31", help="percent of roles flagged, comma-separated (default: 10,31)")
    parser.add_argument("--profile", action="store_true", help="cProfile the last scan of each size (stderr)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from bench.scan_worker import worker

        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    mixes = [int(p) for p in args.flagged.split(",")]
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    spec = {
        "aws": args.aws,
        "account": MANAGEMENT,
        "rounds": args.rounds,
        "naive_sample": args.naive_sample,
        "concurrency": args.concurrency,
        "profile": args.profile,
        "default_page": args.default_page,
    }
    started = time.perf_counter()
    measure = measure_on_fastaws if args.aws == "fastaws" else measure_on_moto
    results, seed_seconds = measure(args, sizes, mixes, spec, say)
    biggest = next((r for r in results if r["roles"] == TARGET_SPEEDUP_AT), None)
    rss_at = next((r for r in results if r["roles"] == TARGET_RSS_AT), None)
    output = {
        "machine": machine(),
        "versions": versions("moto", "boto3", "botocore"),
        "aws": args.aws,
        "latency_ms": args.latency_ms,
        "page_size": PAGE,
        "rounds": args.rounds,
        "seed": args.seed,
        "naive_sample": args.naive_sample,
        "seed_seconds": round(seed_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
        "sizes": results,
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "speedup_at": TARGET_SPEEDUP_AT,
            "speedup_met": None if biggest is None else biggest["ratio"] >= TARGET_SPEEDUP,
            "calls_met": all(r["targets"]["calls_met"] for r in results),
            "floor_ratio": TARGET_FLOOR_RATIO if args.aws == "fastaws" else None,
            "floor_ratio_met": None if args.aws != "fastaws" else all(r["targets"]["floor_ratio_met"] for r in results),
            "peak_rss_mb": TARGET_PEAK_RSS_MB,
            "peak_rss_at": TARGET_RSS_AT,
            "peak_rss_met": None if rss_at is None else rss_at["deputy_guard"]["rss_peak_mb"] < TARGET_PEAK_RSS_MB,
        },
    }
    consistent = all(
        r["deputy_guard"]["summary_matches_mix"]
        and r["deputy_guard"]["verdict_mismatches"] == 0
        and r["deputy_guard"]["roles_reported"] == r["roles"]
        and r["naive"]["verdict_mismatches"] == 0
        and r["tag_reads"]["verdict_mismatches"] == 0
        and r["tag_reads"]["same_verdicts"]
        for r in results
    )
    output["verdicts_consistent"] = consistent
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(render(output))
    if not consistent:
        return 2
    targets = output["targets"]
    met = (
        targets["calls_met"]
        and targets["floor_ratio_met"] is not False  # None on moto: reported, not a target
        and targets["speedup_met"] is not False
        and targets["peak_rss_met"] is not False
    )
    return 0 if met else 1


def render(output: dict[str, Any]) -> str:
    """Markdown tables of the run: time, CPU, bytes and calls, then the report and memory (also used by run_all.py)."""
    lines = [
        f"| roles | flagged | run | wall time (median of {output.get('rounds', 1)}) | vs floor | client CPU "
        "| received | AWS calls |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in output["sizes"]:
        floor, dg, fallback, naive = r["floor"], r["deputy_guard"], r["tag_reads"], r["naive"]
        head = f"| {r['roles']:,} | {r.get('flagged_percent', 10)} %"
        scaled = f" (GetRole time scaled from {naive['roles_read']:,} reads)" if naive["scaled_from_sample"] else ""
        lines.append(
            f"{head} | floor: one paginated ListRoles | {floor['seconds']:.2f} s | 1.0x | {floor['cpu_seconds']:.2f} s "
            f"| {_size(floor['bytes_received'])} | ListRoles {floor['pages']:,} |"
        )
        lines.append(
            f"{head} | reference: the same ListRoles, timestamps kept as text (deputy-guard's IAM client) "
            f"| {floor['text_timestamps_seconds']:.2f} s | {floor['text_timestamps_seconds'] / floor['seconds']:.2f}x "
            f"| | | ListRoles {floor['pages']:,} |"
        )
        listing = r.get("default_page_listing")
        if listing:
            lines.append(
                f"{head} | reference: ListRoles in IAM's default page of 100 | {listing['seconds']:.2f} s "
                f"| {listing['seconds'] / floor['seconds']:.1f}x | | | ListRoles {listing['pages']:,} |"
            )
        lines.append(
            f"{head} | deputy-guard dry run (default: roles with their tags) | {dg['seconds']:.2f} s "
            f"| **{dg['floor_ratio']:.2f}x** | {dg['cpu_seconds']:.2f} s | {_size(dg['bytes_received'])} "
            f"| {_calls(dg['calls'])} |"
        )
        lines.append(
            f"{head} | deputy-guard dry run, ListRoles and tag reads ({dg['scan_concurrency']} in flight) "
            f"| {fallback['seconds']:.2f} s | {fallback['floor_ratio']:.2f}x | {fallback['cpu_seconds']:.2f} s "
            f"| {_size(fallback['bytes_received'])} | {_calls(fallback['calls'])} |"
        )
        lines.append(
            f"{head} | naive scanner | {naive['seconds']:.2f} s{scaled} | {naive['seconds'] / floor['seconds']:.1f}x "
            f"| | | {_calls(naive['calls'])} |"
        )
    lines += [
        "",
        "| roles | flagged | report, API body (compact JSON) | report, `scan --format json` "
        "| peak RSS of the scanning process | of which before the scan |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in output["sizes"]:
        dg = r["deputy_guard"]
        lines.append(
            f"| {r['roles']:,} | {r.get('flagged_percent', 10)} % | {_size(dg['report_api_bytes'])} "
            f"| {_size(dg['report_cli_bytes'])} | {dg['rss_peak_mb']:.0f} MB | {dg['rss_baseline_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def _size(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


def _calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in calls.items()) or "none"


if __name__ == "__main__":
    raise SystemExit(main())
