"""Run every benchmark under bench/ and rewrite the results block of bench/README.md.

Run: .venv/bin/python bench/run_all.py [--quick] [--naive-full] [--no-readme] [--strict] [--c7n VENV] [--json]
(``make bench`` runs it with no options.)

Each benchmark runs in its own interpreter with ``--json``; its progress goes to stderr. Only the text
between ``<!-- results:start -->`` and ``<!-- results:end -->`` in the README is replaced: the prose,
the method notes and the targets above it stay as they are. Exit 0 when every benchmark produced
results (1 with ``--strict`` if a target was missed), 2 if one failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_check, bench_coldstart, bench_events, bench_org, bench_scan, bench_services
from bench.harness import ROOT, calls_text, machine, versions

README = ROOT / "bench" / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Bench:
    key: str
    script: str
    args: list[str]
    timeout: int
    quick_args: list[str] = field(default_factory=list)

    def command(self, quick: bool, extra: list[str]) -> list[str]:
        return [self.script, *(self.quick_args if quick else self.args), *extra]


BENCHES = [
    Bench("engine", "bench/bench_engine.py", ["--seconds", "3"], 120, ["--seconds", "1"]),
    Bench("check", "bench/bench_check.py", ["--files", "5000"], 300, ["--files", "1000"]),
    Bench("events", "bench/bench_events.py", ["--runs", "200"], 300, ["--runs", "30"]),
    Bench(
        "coldstart",
        "bench/bench_coldstart.py",
        ["--runs", "15", "--event-runs", "5"],
        400,
        ["--runs", "5", "--event-runs", "2"],
    ),
    Bench(
        "scan",
        "bench/bench_scan.py",
        ["--aws", "fastaws", "--sizes", "1000,10000", "--flagged", "10,31", "--rounds", "5"],
        1800,
        ["--aws", "fastaws", "--sizes", "1000,3000", "--naive-sample", "300"],
    ),
    # moto answers GetAccountAuthorizationDetails in one page whatever the account's size: at 10,000 roles
    # that page takes moto longer than the bot's clients wait for an answer (5 s), so moto scans 1,000.
    Bench(
        "scan_moto",
        "bench/bench_scan.py",
        ["--aws", "moto", "--sizes", "1000", "--flagged", "10,31", "--naive-sample", "300"],
        1800,
        ["--aws", "moto", "--sizes", "1000", "--flagged", "10", "--naive-sample", "100"],
    ),
    *(
        Bench(
            key,
            "bench/bench_org.py",
            ["--aws", model, "--accounts", str(accounts), "--roles", "200", "--concurrency", "10"],
            1800,
            ["--aws", model, "--accounts", str(accounts // 5), "--roles", "200", "--concurrency", "10"],
        )
        for key, model, accounts in (("org", "fastaws", 200), ("org_moto", "moto", 50))
    ),
    Bench("services", "bench/bench_services.py", [], 300, []),
]
# c7n-org, the organization benchmark's peer, runs from a virtualenv of its own (BENCH_C7N, or --c7n).
C7N_ENV = "BENCH_C7N"


def run(bench: Bench, command: list[str], say: Callable[[str], None]) -> tuple[dict[str, Any] | None, int, float]:
    """Run one benchmark with --json; (results or None, exit code, seconds)."""
    say(f"== {' '.join(command)}")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *command, "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=bench.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        say(f"   {bench.key}: no result within {bench.timeout} s")
        return None, -1, time.perf_counter() - start
    elapsed = time.perf_counter() - start
    try:
        results = json.loads(done.stdout)
    except ValueError:
        say(f"   {bench.key}: exit {done.returncode}, no JSON on stdout")
        return None, done.returncode, elapsed
    say(f"   {bench.key}: {elapsed:.0f} s, exit {done.returncode}")
    return results, done.returncode, elapsed


# --- rendering --------------------------------------------------------------------------------------


def yes_no(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[value]


def engine_table(r: dict[str, Any]) -> str:
    targets = r["targets"]
    rows = [
        (f"evaluate (all {r['policies']} policies of the mix)", "evaluations_per_second"),
        (f"plan_fix (the {r['fixable_policies']} fixable)", "fixes_per_second"),
    ]
    lines = ["| measure | per second, one core | target | met |", "|---|---:|---:|---|"]
    for label, key in rows:
        lines.append(f"| {label} | {r[key]:,} | {targets[key]:,} | {yes_no(r[key] >= targets[key])} |")
    return "\n".join(lines)


def scan_rows(scan: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """The scan's targets (on fastaws): calls, wall time over the floor, memory, and the naive scanner."""
    rows: list[tuple[str, str, str, bool | None]] = []
    for size in scan["sizes"]:
        name = f"Scan, {size['roles']:,} roles, {size['flagged_percent']} % flagged"
        dg = size["deputy_guard"]
        rows.append(
            (
                f"{name}: AWS calls",
                f"{bench_scan.LISTING} = {size['targets']['listing_calls']}, nothing per role",
                calls_text(dg["calls"]),
                size["targets"]["calls_met"],
            )
        )
        ratio = size["targets"]["floor_ratio"]
        rows.append(
            (
                f"{name}: wall time over the floor (one paginated ListRoles, same run)",
                "report only" if ratio is None else f"≤ {ratio}x",
                f"{dg['floor_ratio']:.2f}x ({dg['seconds']:.2f} s / {size['floor']['seconds']:.2f} s)",
                size["targets"]["floor_ratio_met"],
            )
        )
    for size in scan["sizes"]:
        if size["roles"] == scan["targets"].get("peak_rss_at") and size["flagged_percent"] == 10:
            rows.append(
                (
                    f"Scan, {size['roles']:,} roles: peak RSS of the scanning process",
                    f"< {scan['targets']['peak_rss_mb']:.0f} MB",
                    f"{size['deputy_guard']['rss_peak_mb']:.0f} MB",
                    size["deputy_guard"]["rss_peak_mb"] < scan["targets"]["peak_rss_mb"],
                )
            )
        if size["roles"] == scan["targets"]["speedup_at"] and size["flagged_percent"] == 10:
            rows.append(
                (
                    f"Scan, {size['roles']:,} roles: speed-up over the naive scanner",
                    f"≥ {scan['targets']['speedup']:.0f}x",
                    f"{size['ratio']:.1f}x ({size['call_ratio']:.1f}x fewer calls)",
                    size["ratio"] >= scan["targets"]["speedup"],
                )
            )
    return rows


def org_rows(org: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """The organization scan's targets (on fastaws): time over the floor, calls, and c7n-org in the same run."""
    rows: list[tuple[str, str, str, bool | None]] = []
    name = f"Organization, {org['accounts']} accounts x {org['roles_per_account']} roles"
    for run in org["org"]:
        rows.append(
            (
                f"{name}, {run['concurrency']} at a time: wall time over the floor (AssumeRole + ListRoles "
                "per account, same concurrency)",
                "≤ 1.5x",
                f"{run['floor_ratio']:.2f}x ({run['seconds']:.2f} s / {run['floor_seconds']:.2f} s)",
                run["met"],
            )
        )
        rows.append(
            (
                f"{name}: AWS calls",
                "per account one listing call and AssumeRole; GetCallerIdentity once",
                calls_text(run["requests_by_action"]),
                run["calls_met"],
            )
        )
    peer = org.get("c7n")
    if peer and "error" not in peer:
        ours = next((run["seconds"] for run in org["org"] if run["concurrency"] == org["cli"]["concurrency"]), None)
        rows.append(
            (
                f"{name}: deputy-guard against c7n-org, same run",
                "faster",
                f"{ours:.1f} s against {peer['seconds']:.1f} s" if ours is not None else "n/a",
                peer.get("deputy_guard_faster"),
            )
        )
    return rows


def summary(results: dict[str, Any]) -> tuple[str, bool]:
    """The targets table: what each benchmark promised and whether this run met it."""
    rows: list[tuple[str, str, str, bool | None]] = []
    met_all = True
    scan = results.get("scan")
    if scan:
        rows += scan_rows(scan)
    org = results.get("org")
    if org:
        rows += org_rows(org)
    events = results.get("events")
    if events:
        for row in events["rows"]:
            if row["met"] is None:
                continue
            rows.append(
                (
                    f"Event: {row['kind']} (guard {'on' if row['guard'] else 'off'})",
                    row["target"],
                    calls_text(row["calls"]),
                    row["met"],
                )
            )
    cold = results.get("coldstart")
    if cold:
        imports = cold["imports"]
        rows.append(
            (
                "Cold start: import app / import boto3",
                f"≤ {cold['target_ratio']}x",
                f"{imports['ratio']:.2f}x ({imports['app_ms']:.1f} ms / {imports['boto3_ms']:.1f} ms)",
                imports["met"],
            )
        )
    engine = results.get("engine")
    if engine:
        for label, key in (("evaluations", "evaluations_per_second"), ("fixes", "fixes_per_second")):
            target = engine["targets"][key]
            rows.append((f"Engine: {label} per second", f"≥ {target:,}", f"{engine[key]:,}", engine[key] >= target))
    check = results.get("check")
    if check:
        for label, key in (("in process", "in_process_policies"), ("as a process", "cli_process")):
            measured = check[key]["policies_per_second"]
            target = check["target_policies_per_second"]
            rows.append(
                (f"check DIR ({label}): policies per second", f"≥ {target:,}", f"{measured:,}", measured >= target)
            )
        terraform, target = check["in_process_terraform"]["files_per_second"], check["target_tf_files_per_second"]
        rows.append(
            ("check DIR (in process): .tf files per second", f"≥ {target:,}", f"{terraform:,}", terraform >= target)
        )
    services = results.get("services")
    if services:
        written = next(row for row in services["scores"] if row["tool"].endswith("would write"))
        rows.append(
            (
                "Services (--services all): fixes written on safe roles",
                "0",
                f"{written['fp']} (of {written['flagged']} fixes, on {services['roles']} roles)",
                written["fp"] == 0,
            )
        )
    lines = ["| benchmark | target | measured | met |", "|---|---|---|---|"]
    for name, target, measured, met in rows:
        met_all = met_all and met is not False
        lines.append(f"| {name} | {target} | {measured} | {yes_no(met)} |")
    return "\n".join(lines), met_all


def scan_section(scan: dict[str, Any], model: str) -> list[str]:
    """The scan's tables on one AWS model, with the requests each run made and its verdicts."""
    parts: list[str] = []
    sampled = any(s["naive"]["scaled_from_sample"] for s in scan["sizes"])
    served = (
        "fastaws (the latency-only model) on 127.0.0.1, a world per size and mix"
        if model == "fastaws"
        else f"moto {scan['versions']['moto']} server on 127.0.0.1 (persistent connections), seeded in its backend"
    )
    parts += [
        f"### Scan (dry run) on {model}",
        "",
        f"{served}; {scan['latency_ms']:.0f} ms added to every request; every listing asks for pages of "
        f"{scan['page_size']:,}; each size measured in a fresh interpreter, the floor and both listings "
        f"alternately, {scan.get('rounds', 1)} times each (medians). Setting up the accounts took "
        f"{scan['seed_seconds']:.1f} s (untimed).",
        "",
        bench_scan.render(scan),
        "",
    ]
    for size in scan["sizes"]:
        dg, naive = size["deputy_guard"], size["naive"]
        mix = ", ".join(f"{k} {v:,}" for k, v in size["mix"].items())
        parts.append(
            f"- {size['roles']:,} roles, {size['flagged_percent']} % flagged ({mix}): HTTP requests that "
            "reached the server: deputy-guard "
            f"{sum(dg['http_requests'].values()):,}, naive {sum(naive['http_requests'].values()):,}"
            f"{' (its sampled run)' if naive['scaled_from_sample'] else ''}; "
            f"deputy-guard's verdicts match the seeded mix: {yes_no(dg['summary_matches_mix'])}; naive "
            f"verdict mismatches: {naive['verdict_mismatches']}; naive GetRole {naive['get_role_ms_each']:.1f} ms "
            f"each; deputy-guard wrote {dg['log_lines']:,} log lines; the ListRoles listing gives the same "
            f"verdicts: {yes_no(size['tag_reads']['same_verdicts'])}, the same report (actions included): "
            f"{yes_no(size['tag_reads']['same_report'])}."
        )
    if sampled:
        parts += [
            "",
            f"The naive figure at sizes above {scan['naive_sample']:,} roles is its measured ListRoles time "
            "plus its mean measured GetRole time (over the evenly spaced reads it made) times the number of "
            "roles. `bench/run_all.py --naive-full` runs it in full.",
        ]
    parts.append("")
    return parts


def block(results: dict[str, Any], commands: list[str], seconds: float, failed: list[str]) -> str:
    info = machine()
    libraries = versions("moto", "boto3", "botocore", "aws-lambda-powertools", "chalice")
    table, _ = summary(results)
    parts = [
        START,
        "<!-- Generated by bench/run_all.py: edit the prose above, not this block. -->",
        "",
        f"Generated by `make bench` on {info['date']}, in {seconds / 60:.1f} minutes. Machine: `nproc` = "
        f"{info['nproc']}, {info['cpu']} ({info['arch']}), Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in libraries.items())
        + ".",
        "",
        "Commands (each with `--json`):",
        "",
        "```",
        *[f".venv/bin/python {c}" for c in commands],
        "```",
        "",
    ]
    if failed:
        parts += [f"**Did not produce results:** {', '.join(failed)}.", ""]
    parts += ["### Targets", "", table, ""]
    for key, model in (("scan", "fastaws"), ("scan_moto", "moto")):
        scan = results.get(key)
        if scan:
            parts += scan_section(scan, model)
    for key, model in (("org", "fastaws"), ("org_moto", "moto")):
        org = results.get(key)
        if org:
            parts += [f"### Organization scan on {model}", "", bench_org.render(org), ""]
    events = results.get("events")
    if events:
        parts += [
            "### Events",
            "",
            f"{events['aws']}, {events['runs']} timed runs per row after {events['warmup']} warm-up runs; "
            f"enforce mode, notifier: {events['notifier']}.",
            "",
            bench_events.render(events),
            "",
        ]
    cold = results.get("coldstart")
    if cold:
        parts += ["### Cold start and package", "", bench_coldstart.render(cold), ""]
    engine = results.get("engine")
    if engine:
        parts += [
            "### Engine throughput",
            "",
            f"`bench/bench_engine.py`, one core, {engine['policies']} policies (section above for the mix).",
            "",
            engine_table(engine),
            "",
        ]
    check = results.get("check")
    if check:
        parts += [
            "### Check throughput",
            "",
            "`bench/bench_check.py`, one directory, one process.",
            "",
            bench_check.render(check),
            "",
        ]
    services = results.get("services")
    if services:
        parts += [
            "### Services: precision and recall beside Prowler",
            "",
            f"`bench/bench_services.py`, {services['roles']} roles, {services['vulnerable']} vulnerable by the "
            "ground truth (section above for the mix and the model of Prowler's check).",
            "",
            bench_services.render(services["scores"]),
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def rewrite_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    # The markers count only on lines of their own (the prose may quote them).
    pattern = re.compile(rf"^{re.escape(START)}$.*?^{re.escape(END)}$", re.DOTALL | re.MULTILINE)
    if pattern.search(readme):
        updated = pattern.sub(lambda _m: text, readme, count=1)
    else:
        updated = readme.rstrip("\n") + "\n\n## Results\n\n" + text
    README.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, README untouched; for trying things out")
    parser.add_argument("--naive-full", action="store_true", help="run the naive scanner in full (adds ~4 minutes)")
    parser.add_argument(
        "--only", help="comma-separated subset: engine,check,events,coldstart,scan,scan_moto,org,org_moto,services"
    )
    parser.add_argument("--c7n", type=Path, help=f"a virtualenv with c7n-org, the peer of the org scan (or {C7N_ENV})")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", action="store_true", help="print every benchmark's results as JSON")
    args = parser.parse_args(argv)
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    wanted = set(args.only.split(",")) if args.only else {b.key for b in BENCHES}
    started = time.perf_counter()
    results: dict[str, Any] = {}
    commands: list[str] = []
    failed: list[str] = []
    for bench in BENCHES:
        if bench.key not in wanted:
            continue
        extra = ["--naive-sample", "0"] if bench.key.startswith("scan") and args.naive_full else []
        if bench.key == "org" and (args.c7n or os.environ.get(C7N_ENV)):
            extra = ["--c7n", str(args.c7n or os.environ[C7N_ENV])]
        command = bench.command(args.quick, extra)
        outcome, _code, _seconds = run(bench, command, say)
        commands.append(" ".join(command))
        if outcome is None:
            failed.append(bench.key)
        else:
            results[bench.key] = outcome
    seconds = time.perf_counter() - started
    text = block(results, commands, seconds, failed)
    table, met_all = summary(results)
    if not (args.no_readme or args.only or args.quick):
        rewrite_readme(text)
        say(f"rewrote the results block of {README.relative_to(ROOT)}")
    if args.json:
        print(json.dumps({"seconds": round(seconds, 1), "failed": failed, "results": results}, indent=2))
    else:
        print(table)
        print(f"\n{len(results)} benchmarks in {seconds:.0f} s")
    if failed:
        return 2
    return 1 if args.strict and not met_all else 0


if __name__ == "__main__":
    raise SystemExit(main())
