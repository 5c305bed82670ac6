"""The REST routes served by `chalice local` (the dev stage's config) over real HTTP, AWS on moto's server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deputy_guard.embedded import SlackStandIn
from tests.e2e.conftest import ROOT, cli_env, client, create_role, trust
from tests.world import FOREIGN, VULNERABLE

pytestmark = pytest.mark.e2e
CHALICE = str(Path(sys.executable).with_name("chalice"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api(endpoint: str, slack: SlackStandIn) -> Iterator[str]:
    # The dev stage reads the Slack webhook from SSM and names its own table: provide both in the embedded account.
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
    client("ssm").put_parameter(
        Name=config["DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER"], Value=slack.url, Type="SecureString"
    )
    subprocess.run(
        [str(Path(sys.executable).with_name("deputy-guard")), "setup"],
        env=cli_env(endpoint, DEPUTY_GUARD_TABLE=config["DEPUTY_GUARD_TABLE"]),
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    # Without --no-autoreload, `chalice local` serves from a child process that watches the sources, and
    # terminating the parent would leave that child running; its own session lets the test stop them all.
    process = subprocess.Popen(
        [CHALICE, "local", "--host", "127.0.0.1", "--port", str(port), "--stage", "dev", "--no-autoreload"],
        cwd=ROOT,
        env=cli_env(endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"chalice local exited: {process.stdout.read() if process.stdout else ''}") from None
            time.sleep(0.2)
    else:
        stop(process)
        raise RuntimeError("chalice local did not start within 60 s")
    try:
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop the server and anything it started (its process group), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a child that outlived its parent


def call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_routes_over_http(api: str, slack: SlackStandIn) -> None:
    create_role("vulnerable-sfn", VULNERABLE, Tags=[{"Key": "owner", "Value": "orders"}])
    create_role("foreign-sfn", FOREIGN)

    status, report = call("POST", f"{api}/scans", {"dry_run": True})
    assert status == 200
    assert report["summary"] == {"compliant": 0, "not_applicable": 0, "non_compliant": 1, "needs_review": 1}

    status, role = call("GET", f"{api}/roles/vulnerable-sfn")
    assert status == 200 and role["verdict"] == "non_compliant" and role["fixed_policy"] is not None

    status, fixed = call("POST", f"{api}/roles/vulnerable-sfn/remediate")
    assert status == 200 and fixed["action"] == "fixed"
    assert trust("vulnerable-sfn") != VULNERABLE
    # The owner heard it on Slack, through the webhook URL stored in SSM
    assert any("vulnerable-sfn" in message["text"] for message in slack.received)

    status, refused = call("POST", f"{api}/roles/foreign-sfn/remediate")
    assert status == 409 and refused["action"] == "review"

    status, reverted = call("POST", f"{api}/roles/vulnerable-sfn/revert", {"force": False})
    assert status == 200 and reverted["status"] == "reverted"
    assert trust("vulnerable-sfn") == VULNERABLE


def test_bad_input_over_http_is_400_or_404(api: str) -> None:
    assert call("POST", f"{api}/scans", raw=b"{nope")[0] == 400
    assert call("POST", f"{api}/scans", {"surprise": 1})[0] == 400
    assert call("GET", f"{api}/roles/no-such-role")[0] == 404
    assert call("GET", f"{api}/roles/bad*name")[0] == 400
