"""fastaws for the benchmarks: a latency-only model of IAM, STS and Organizations, started on a world file.

fastaws (``../shared/tools/fastaws/server.py`` beside the project, or ``--fastaws PATH``, or the
``BENCH_FASTAWS`` variable) serves precomputed answers for the accounts and roles of a world file, with a
fixed latency a request, from several worker processes, at a fraction of moto's CPU a request: on a
machine of two shared cores, a scan against it measures the scanner, not the stand-in AWS.
bench/README.md says what each model measures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.harness import LOOPBACK, ROOT

MANAGEMENT = "123456789012"  # the account fastaws's `testing` credentials act in (moto's default as well)
_START_SECONDS = 180.0


def server_path(given: Path | None = None) -> Path:
    """Where fastaws's server.py is: ``given``, else BENCH_FASTAWS, else the shared tools beside the project."""
    path = given or Path(os.environ.get("BENCH_FASTAWS") or ROOT.parent / "shared" / "tools" / "fastaws" / "server.py")
    if not path.is_file():
        raise SystemExit(f"fastaws not found at {path} (--fastaws PATH or BENCH_FASTAWS)")
    return path


def world_role(name: str, path: str, policy: str, tags: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """A role of a world file: ``policy`` is the trust policy text, served exactly as given."""
    return {"name": name, "path": path, "policy": policy, "tags": [{"Key": k, "Value": v} for k, v in tags]}


def world_account(account: str, roles: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": account, "name": f"bench-{account}", "email": f"bench-{account}@example.com", "roles": roles}


class FastAws:
    """fastaws on a free 127.0.0.1 port, serving ``world`` with ``latency_ms`` a request (a child process)."""

    def __init__(self, world: Mapping[str, Any], latency_ms: float, *, workers: int = 2, server: Path | None = None):
        self._dir = Path(tempfile.mkdtemp(prefix="bench-fastaws-"))
        world_file, url_file = self._dir / "world.json", self._dir / "url.txt"
        world_file.write_text(json.dumps(world))
        command = [sys.executable, str(server_path(server)), "--world", str(world_file), "--host", LOOPBACK]
        command += ["--latency-ms", str(latency_ms), "--workers", str(workers), "--url-file", str(url_file)]
        command += ["--log", str(self._dir / "server.log")]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_SECONDS
        while not (url_file.is_file() and url_file.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self._dir / "server.log").read_text()[-2000:] if (self._dir / "server.log").exists() else ""
                self.stop()
                raise SystemExit(f"fastaws did not start: {log}")
            time.sleep(0.05)
        self.url = url_file.read_text().strip()
        # Loopback only, and never through a proxy the environment may name.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> FastAws:
        return self  # listening since construction; the same shape as the harness's LatencyAws

    def _control(self, path: str, *, post: bool = False) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=b"" if post else None, method="POST" if post else "GET")
        with self._opener.open(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def counts(self) -> dict[str, Any]:
        """Requests by ``service:Action``, the in-flight peak, fastaws's own CPU seconds, unserved actions."""
        return self._control("/_bench/counts")

    def requests(self) -> dict[str, int]:
        return dict(sorted(self.counts()["by_action"].items()))

    def reset_requests(self) -> None:
        self._control("/_bench/reset", post=True)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=30)
        shutil.rmtree(self._dir, ignore_errors=True)


class FastOrg:
    """The same organization on fastaws: a world file of the management account and its members."""

    def __init__(self, accounts: int, roles: int, latency_ms: float, server: Path | None, member_role: str) -> None:
        from bench.mix import check_shapes, mix, shapes

        members = [f"{210000000000 + index:012d}" for index in range(accounts)]
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{MANAGEMENT}:root"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        )
        served = []
        expected: dict[str, dict[str, int]] = {}
        for account in members:
            block = shapes(account)
            check_shapes(block, account)
            listed = [world_role(member_role, "/", trust)]
            counts: dict[str, int] = {}
            for name, shape, text in mix(block, 0, roles):
                listed.append(world_role(name, shape.path, text, shape.tags))
                counts[shape.verdict] = counts.get(shape.verdict, 0) + 1
            served.append(world_account(account, listed))
            expected[account] = counts
        world = {"management": MANAGEMENT, "organization_id": "o-bench00001", "member_role": member_role}
        self._server = FastAws({**world, "accounts": served}, latency_ms, server=server)
        # The member role is one more not_applicable role in each account.
        self.info: dict[str, Any] = {
            "url": self._server.url,
            "management": MANAGEMENT,
            "members": members,
            "expected": expected,
            "extra_roles": 1,
        }
        self.cpu = 0.0

    def stats(self) -> dict[str, int]:
        """Requests by service:Action since the last call (and fastaws's CPU seconds so far in ``cpu``)."""
        counts = self._server.counts()
        self._server.reset_requests()
        self.cpu += float(counts.get("server_cpu_s", 0.0))
        return dict(counts["by_action"])

    def stop(self) -> None:
        self._server.stop()
