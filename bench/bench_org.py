"""Organization benchmark: `deputy-guard scan --accounts` over 50 accounts x 200 roles at 20 ms per request.

Run: .venv/bin/python bench/bench_org.py [--accounts 50] [--roles 200] [--latency-ms 20]
                                        [--concurrency 5,10,25] [--c7n /tmp/c7n-venv] [--json]

moto's server runs in a child process (``--serve``) behind the harness's latency middleware, so the
server's work does not share the scanning process's interpreter lock, as AWS's would not. The child
creates the organization through moto's Organizations API, the member role in every account, and seeds
each account's roles straight into moto's IAM backend (no HTTP, untimed), with bench_scan's mix: per 100
roles, 70 unrelated, 20 compliant, 8 vulnerable, 2 needing review.

The scan is the CLI's own code path, ``deputy_guard.org_scan.scan_accounts`` (what ``scan --accounts``
runs, less the interpreter's start), with every client and credential forgotten before each run, so each
account pays its AssumeRole. One account's scan time is measured in the same run, the same way, as the
median over several accounts; the target is that the organization takes at most
1.5 x ceil(accounts / concurrency) x that time. The ``deputy-guard scan --accounts`` process itself is
timed once as well. With ``--c7n VENV``, c7n-org (Cloud Custodian's organization runner) scans the same
accounts with a policy flagging the same roles, as the peer figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fastaws import FastOrg
from bench.harness import REGION, ROOT, LatencyAws, machine, quiet, use_fake_aws, versions

TARGET_FACTOR = 1.5
MEMBER_ROLE = "deputy-guard-member"


# --- the server (child process) ------------------------------------------------------------------------


def serve(accounts: int, roles: int, latency: float) -> int:
    """Seed the organization, print where it is, then answer 'stats' lines on stdin until it closes."""
    import boto3
    from moto.iam.models import iam_backends

    from bench import bench_scan
    from bench.mix import check_shapes, seed, shapes

    lighten = getattr(bench_scan, "lighten_moto", None)
    if lighten is not None:
        lighten()  # moto's own per-request costs IAM does not have (bench_scan.py explains them)
    server = _latency_server()
    use_fake_aws(server.url)
    organizations = boto3.client("organizations", region_name="us-east-1")
    organizations.create_organization(FeatureSet="ALL")
    management = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
    members = []
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{management}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    expected: dict[str, dict[str, int]] = {}
    for index in range(accounts):
        created = organizations.create_account(AccountName=f"bench-{index:03d}", Email=f"bench-{index:03d}@example.com")
        account = created["CreateAccountStatus"]["AccountId"]
        members.append(account)
        backend = iam_backends[account]["global"]
        backend.create_role(MEMBER_ROLE, trust, "/", None, "", [], None)
        block = shapes(account)
        check_shapes(block, account)
        counts: dict[str, int] = {}
        for verdict in seed(backend, block, 0, roles).values():
            counts[verdict] = counts.get(verdict, 0) + 1
        expected[account] = counts
    server.latency = latency
    server.reset_requests()
    # The member role and moto's OrganizationAccountAccessRole are two more not_applicable roles.
    info = {"url": server.url, "management": management, "members": members, "expected": expected, "extra_roles": 2}
    print(json.dumps(info))
    sys.stdout.flush()
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"requests": server.requests(), "cpu": time.process_time()}))
            sys.stdout.flush()
            server.reset_requests()
    server.stop()
    return 0


def _latency_server() -> LatencyAws:
    """The harness's server, with persistent HTTP/1.1 connections where the harness offers them (AWS keeps
    connections alive; a new TCP connection and server thread per request would be the bench's own cost)."""
    import inspect

    if "keep_alive" in inspect.signature(LatencyAws).parameters and not os.environ.get("BENCH_NO_KEEP_ALIVE"):
        return LatencyAws(0.0, keep_alive=True).start()
    return LatencyAws(0.0).start()


class Server:
    def __init__(self, accounts: int, roles: int, latency: float) -> None:
        command = [sys.executable, __file__, "--serve", "--accounts", str(accounts), "--roles", str(roles)]
        command += ["--latency-ms", str(latency * 1000)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        self.info: dict[str, Any] = json.loads(self.process.stdout.readline())
        self.cpu = 0.0

    def stats(self) -> dict[str, int]:
        """Requests by service:Action since the last call (and the server's CPU seconds so far in ``cpu``)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        self.cpu = float(answer["cpu"])
        return dict(answer["requests"])

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


# --- the scans (this process) --------------------------------------------------------------------------


def directory(members: list[str]) -> Any:
    from chalicelib.adapters import aws
    from chalicelib.domain.scope import AccountScope, ScopeKind
    from chalicelib.domain.settings import load_settings
    from chalicelib.runtime.organization import build_accounts
    from chalicelib.runtime.wiring import build_deps

    aws.reset_clients()  # every client and every member's credentials: each run assumes each role again
    settings = load_settings({"LOG_LEVEL": "WARNING"})
    central = build_deps(settings, idempotent=False)
    return build_accounts(
        settings, central, scope=AccountScope(ScopeKind.LIST, tuple(members)), member_role=MEMBER_ROLE
    )


def timed_scan(members: list[str], workers: int) -> tuple[float, list[Any]]:
    from deputy_guard.org_scan import scan_accounts

    accounts = directory(members)
    with quiet():
        started = time.perf_counter()
        outcomes = scan_accounts(accounts, members, dry_run=True, role_names=None, path_prefix="/", workers=workers)
        seconds = time.perf_counter() - started
    return seconds, outcomes


def floor_scan(members: list[str], workers: int) -> float:
    """The floor: per account, AssumeRole, an IAM client on its credentials and one paginated ListRoles,
    ``workers`` accounts at a time: the least any boto3 scanner of the organization's roles does. Its
    clients come from one session (service models parsed once), not from a new session per account."""
    import boto3

    session = boto3.session.Session(region_name=REGION)
    sts = session.client("sts")
    lock = threading.Lock()  # a session is not thread-safe: clients are made one at a time

    def one(account: str) -> int:
        role = f"arn:aws:iam::{account}:role/{MEMBER_ROLE}"
        credentials = sts.assume_role(RoleArn=role, RoleSessionName="floor")["Credentials"]
        with lock:
            iam = session.client(
                "iam",
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
        listed, kwargs = 0, dict[str, Any](MaxItems=1000)
        while True:
            page = iam.list_roles(**kwargs)
            listed += len(page["Roles"])
            if not page.get("IsTruncated"):
                return listed
            kwargs["Marker"] = page["Marker"]

    one(members[0])  # warm: the IAM model, as the scan's own warm-up run does
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        listed = list(pool.map(one, members))
    seconds = time.perf_counter() - started
    assert all(listed), listed
    return seconds


def check(outcomes: list[Any], expected: dict[str, dict[str, int]], extra_roles: int) -> None:
    for outcome in outcomes:
        if outcome.status != "ok" or not outcome.complete:
            raise SystemExit(f"account {outcome.account} failed: {outcome.error}")
        summary = {k: v for k, v in outcome.report["summary"].items() if v}
        want = dict(expected[outcome.account])
        want["not_applicable"] = want.get("not_applicable", 0) + extra_roles
        if summary != want:
            raise SystemExit(f"account {outcome.account}: verdicts {summary}, expected {want}")


def _flagged(outcome: Any) -> list[str]:
    return [r["role_name"] for r in outcome.report["results"] if r["verdict"] in ("non_compliant", "needs_review")]


def run_cli(url: str, members: list[str], workers: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPUTY_GUARD_"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    env["LOG_LEVEL"] = "WARNING"
    cli = str(Path(sys.executable).with_name("deputy-guard"))
    command = [cli, "scan", "--accounts", ",".join(members), "--concurrency", str(workers), "--format", "json"]
    command += ["--member-role", MEMBER_ROLE]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"deputy-guard scan --accounts failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


# --- c7n-org, the peer -----------------------------------------------------------------------------------

C7N_POLICY = """\
policies:
  - name: step-functions-trust-without-pins
    resource: aws.iam-role
    filters:
      - type: value
        key: >-
          length(AssumeRolePolicyDocument.Statement[?Effect=='Allow'
          && (contains(to_array(Principal.Service || `[]`), 'states.amazonaws.com')
              || contains(to_array(Principal.Service || `[]`), 'states.us-east-1.amazonaws.com'))
          && (Condition.StringEquals."aws:SourceAccount" == null || Condition.ArnLike."aws:SourceArn" == null)])
        op: gt
        value: 0
      - not:
          - type: value
            key: Path
            op: glob
            value: /aws-service-role/*
"""


def run_c7n(venv: Path, url: str, members: list[str], workers: int) -> dict[str, Any]:
    """c7n-org run over the same accounts; returns its wall time and the roles it flagged per account."""
    binary = venv / "bin" / "c7n-org"
    if not binary.exists():
        return {"error": f"{binary} not found (pip install c7n c7n-org into {venv})"}
    work = Path(tempfile.mkdtemp(prefix="bench-c7n-"))
    accounts = [
        {
            "account_id": a,
            "name": f"bench-{i:03d}",
            "role": f"arn:aws:iam::{a}:role/{MEMBER_ROLE}",
            "regions": ["us-east-1"],
        }
        for i, a in enumerate(members)
    ]
    (work / "accounts.json").write_text(json.dumps({"accounts": accounts}))
    (work / "policy.yml").write_text(C7N_POLICY)
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "HOME", "NO_PROXY", "no_proxy"))}
    env["C7N_ORG_PARALLEL"] = str(workers)  # c7n-org's accounts in parallel (processes)
    command = [str(binary), "run", "-c", str(work / "accounts.json"), "-u", str(work / "policy.yml")]
    command += ["-s", str(work / "out"), "--region", "us-east-1", "--cache-period", "0"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    seconds = time.perf_counter() - started
    names = {f"bench-{i:03d}": a for i, a in enumerate(members)}
    flagged: dict[str, list[str]] = {}
    for resources in (work / "out").rglob("resources.json"):
        account = names[resources.relative_to(work / "out").parts[0]]
        flagged[account] = sorted(r["RoleName"] for r in json.loads(resources.read_text()))
    result = {"seconds": seconds, "returncode": done.returncode, "flagged": flagged, "stderr": done.stderr[-2000:]}
    if not os.environ.get("BENCH_KEEP_C7N"):
        shutil.rmtree(work, ignore_errors=True)
    result["dir"] = str(work)
    return result


# --- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--aws", choices=("fastaws", "moto"), default="fastaws", help="the AWS stand-in (default: fastaws)"
    )
    parser.add_argument("--fastaws", type=Path, help="fastaws's server.py (default: the shared tools' copy)")
    parser.add_argument("--accounts", type=int, help="member accounts (default: 200 on fastaws, 50 on moto)")
    parser.add_argument("--roles", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", help="comma-separated (default: 10 on fastaws, 5,10,25 on moto)")
    parser.add_argument("--single-runs", type=int, default=5, help="accounts scanned alone for one account's time")
    parser.add_argument("--c7n", type=Path, help="a virtualenv with c7n and c7n-org installed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    if args.serve:
        return serve(args.accounts, args.roles, latency)
    fast = args.aws == "fastaws"
    count = args.accounts or (200 if fast else 50)
    concurrencies = [int(c) for c in (args.concurrency or ("10" if fast else "5,10,25")).split(",")]

    seed_started = time.perf_counter()
    server = (
        FastOrg(count, args.roles, args.latency_ms, args.fastaws, MEMBER_ROLE)
        if fast
        else Server(count, args.roles, latency)
    )
    seeded = time.perf_counter() - seed_started
    listing_calls = math.ceil((args.roles + server.info["extra_roles"]) / 1000)
    try:
        use_fake_aws(server.info["url"])
        members: list[str] = server.info["members"]
        expected: dict[str, dict[str, int]] = server.info["expected"]
        timed_scan(members[:1], 1)  # warm: imports, service models
        server.stats()
        singles = []
        for account in members[1 : 1 + args.single_runs]:
            seconds, outcomes = timed_scan([account], 1)
            check(outcomes, expected, server.info["extra_roles"])
            singles.append(seconds)
        one = statistics.median(singles)
        per_account_requests = {k: v / len(singles) for k, v in server.stats().items()}
        runs = []
        for workers in concurrencies:
            floor_cpu = time.process_time()
            floor = floor_scan(members, workers)
            floor_cpu = time.process_time() - floor_cpu
            server.stats()
            server_cpu, client_cpu = server.cpu, time.process_time()
            seconds, outcomes = timed_scan(members, workers)
            client_cpu = time.process_time() - client_cpu
            check(outcomes, expected, server.info["extra_roles"])
            requests = server.stats()
            server_cpu = server.cpu - server_cpu
            bound = TARGET_FACTOR * floor
            cores = machine()["nproc"] or 1
            # Per account: the listing's calls and AssumeRole; once per scan: the caller's own identity.
            calls = {
                "iam:GetAccountAuthorizationDetails": len(members) * listing_calls,
                "sts:AssumeRole": len(members),
                "sts:GetCallerIdentity": 1,
            }
            runs.append(
                {
                    "concurrency": workers,
                    "seconds": round(seconds, 3),
                    "floor_seconds": round(floor, 3),
                    "floor_client_cpu_seconds": round(floor_cpu, 2),
                    "floor_ratio": round(seconds / floor, 2),
                    "bound_seconds": round(bound, 3),
                    "met": seconds <= bound,
                    "ideal_seconds": round(math.ceil(len(members) / workers) * one, 3),
                    "requests": sum(requests.values()),
                    "requests_by_action": dict(sorted(requests.items())),
                    "calls_met": requests == calls,
                    "client_cpu_per_account_ms": round(client_cpu / len(members) * 1000, 1),
                    "client_cpu_per_1000_roles_s": round(client_cpu / (len(members) * args.roles / 1000), 3),
                    "client_cpu_seconds": round(client_cpu, 2),
                    "server_cpu_seconds": round(server_cpu, 2),
                    # No schedule beats the CPU both processes need: each has one interpreter lock, and
                    # together they share the machine's cores.
                    "cpu_floor_seconds": round(max(client_cpu, server_cpu, (client_cpu + server_cpu) / cores), 2),
                }
            )
        cli_workers = 10
        cli_seconds = run_cli(server.info["url"], members, cli_workers)
        server.stats()
        peer = run_c7n(args.c7n, server.info["url"], members, cli_workers) if args.c7n else None
        if peer is not None and "error" not in peer:
            peer["requests"] = server.stats()
            ours = {o.account: sorted(_flagged(o)) for o in outcomes}
            peer["same_roles_as_deputy_guard"] = peer["flagged"] == ours
            peer["flagged"] = {account: len(roles) for account, roles in peer["flagged"].items()}
            at = next((run for run in runs if run["concurrency"] == cli_workers), None)
            peer["deputy_guard_faster"] = None if at is None else at["seconds"] < peer["seconds"]
    finally:
        server.stop()
    output = {
        "machine": machine(),
        "versions": versions("boto3", "botocore", "moto", "aws-lambda-powertools"),
        "aws": args.aws,
        "accounts": len(members),
        "roles_per_account": args.roles,
        "latency_ms": args.latency_ms,
        "seed_seconds": round(seeded, 1),
        "one_account": {"median_seconds": round(one, 3), "runs": [round(s, 3) for s in singles]},
        "requests_per_account": dict(sorted(per_account_requests.items())),
        "org": runs,
        "cli": {"concurrency": cli_workers, "seconds": round(cli_seconds, 3)},
        "c7n": peer,
        # The targets hold on fastaws; on moto its own CPU is the limit, and the figures are a report.
        "met": not fast or (all(run["met"] and run["calls_met"] for run in runs) and peer_ok(peer)),
    }
    print(json.dumps(output, indent=2) if args.json else render(output))
    return 0 if output["met"] else 1


def peer_ok(peer: dict[str, Any] | None) -> bool:
    """deputy-guard ahead of c7n-org in the same run, when c7n-org ran (it is optional)."""
    return peer is None or "error" in peer or peer.get("deputy_guard_faster") is not False


def render(output: dict[str, Any]) -> str:
    one = output["one_account"]["median_seconds"]
    lines = [
        f"Organization scan: {output['accounts']} accounts x {output['roles_per_account']} roles, "
        f"{output['latency_ms']:g} ms per request ({output['machine']['nproc']} cores, {output['machine']['cpu']})",
        "",
        f"One account alone (median of {len(output['one_account']['runs'])}): {one:.3f} s; requests per account: "
        + ", ".join(f"{k} {v:g}" for k, v in output["requests_per_account"].items()),
        "",
        "| concurrency | floor: AssumeRole + ListRoles per account | organization scan | vs floor | target (1.5x) "
        f"| met | calls as expected | CPU: scanner / {output.get('aws', 'moto')} | scanner CPU per account "
        "| per 1,000 roles |",
        "|---:|---:|---:|---:|---:|:---:|:---:|---:|---:|---:|",
    ]
    for run in output["org"]:
        lines.append(
            f"| {run['concurrency']} | {run['floor_seconds']:.2f} s | {run['seconds']:.2f} s | "
            f"**{run['floor_ratio']:.2f}x** | {run['bound_seconds']:.2f} s | {'yes' if run['met'] else 'NO'} | "
            f"{'yes' if run['calls_met'] else 'NO'} | "
            f"{run['client_cpu_seconds']:.1f} s / {run['server_cpu_seconds']:.1f} s | "
            f"{run['client_cpu_per_account_ms']:.0f} ms | {run['client_cpu_per_1000_roles_s']:.2f} s |"
        )
    lines.append("")
    lines.append(
        f"`deputy-guard scan --accounts ... --concurrency {output['cli']['concurrency']}` as a process: "
        f"{output['cli']['seconds']:.2f} s (interpreter start and imports included)"
    )
    peer = output.get("c7n")
    if peer:
        if "error" in peer:
            lines.append(f"c7n-org: {peer['error']}")
        else:
            lines.append(
                f"c7n-org run (C7N_ORG_PARALLEL={output['cli']['concurrency']}): {peer['seconds']:.2f} s, exit "
                f"{peer['returncode']}, {sum(peer['flagged'].values())} roles flagged in {len(peer['flagged'])} "
                f"accounts ({'the same roles as' if peer['same_roles_as_deputy_guard'] else 'NOT the same roles as'} "
                f"deputy-guard), {sum(peer['requests'].values())} requests"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
