"""Fixtures for the notification tests: real-shaped notices, a real local Slack stand-in, simple fakes."""

from __future__ import annotations

import copy
import difflib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.adapters.aws import SnsGateway
from chalicelib.domain.models import Action, Notice, Problem, ProblemCode, Verdict

ACCOUNT = "111122223333"
# A recognisable secret: if any of this shows up in a log or error, the test that looks for it fails.
WEBHOOK_SECRET = "XXsecretWebhookTokenDoNotLogXX"
WEBHOOK_PATH = f"/services/T0DEPUTY/B0GUARD/{WEBHOOK_SECRET}"

VULNERABLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _fixed(doc: dict[str, Any], account: str, partition: str) -> dict[str, Any]:
    fixed = copy.deepcopy(doc)
    fixed["Statement"][0]["Condition"] = {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:{partition}:states:*:{account}:*"},
    }
    return fixed


def unified_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    return "\n".join(
        difflib.unified_diff(
            json.dumps(before, indent=2).splitlines(),
            json.dumps(after, indent=2).splitlines(),
            fromfile="before",
            tofile="after",
            lineterm="",
        )
    )


@pytest.fixture
def make_notice() -> Callable[..., Notice]:
    """Build a real-shaped Notice for a fixed role; keyword arguments override any field."""

    def build(
        role_name: str = "OrdersStateMachineRole",
        *,
        partition: str = "aws",
        account: str = ACCOUNT,
        **overrides: Any,
    ) -> Notice:
        before = VULNERABLE_TRUST
        after = _fixed(before, account, partition)
        notice = Notice(
            account=account,
            region="us-east-1",
            role_name=role_name,
            role_arn=f"arn:{partition}:iam::{account}:role/service-role/{role_name}",
            verdict=Verdict.NON_COMPLIANT,
            problems=(
                Problem(ProblemCode.MISSING_SOURCE_ACCOUNT, 0, "statement 0 does not pin aws:SourceAccount"),
                Problem(ProblemCode.MISSING_SOURCE_ARN, 0, "statement 0 does not pin aws:SourceArn"),
            ),
            action=Action.FIXED,
            reason="enforce mode: trust policy rewritten to pin the account",
            before=before,
            after=after,
            diff=unified_diff(before, after),
            owner="team-payments",
            actor=f"arn:aws:sts::{account}:assumed-role/Admin/alice",
            event_id="5b1c2f0e-7d55-4c2a-9d7e-3f0a1b2c3d4e",
            time="2025-01-15T10:20:30Z",
            services=("states.amazonaws.com",),
            revert_command=f"deputy-guard revert {role_name}",
            change_id="chg-0001",
            trigger="event",
        )
        return replace(notice, **overrides)

    return build


def check_block_kit(payload: dict[str, Any]) -> None:
    """Fail unless ``payload`` is an incoming-webhook message within Slack's documented Block Kit limits."""
    assert isinstance(payload.get("text"), str) and payload["text"], "fallback text missing"
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] == "mrkdwn"
                assert 1 <= len(block["text"]["text"]) <= 3000
            if "fields" in block:
                assert 1 <= len(block["fields"]) <= 10
                assert all(1 <= len(f["text"]) <= 2000 for f in block["fields"])
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(1 <= len(e["text"]) <= 3000 for e in block["elements"])
        else:
            assert kind == "divider", f"unexpected block type {kind}"


@pytest.fixture
def block_kit() -> Callable[[dict[str, Any]], None]:
    return check_block_kit


@pytest.fixture
def secret() -> str:
    """The recognisable token inside every test webhook URL."""
    return WEBHOOK_SECRET


@pytest.fixture
def webhook_path() -> str:
    return WEBHOOK_PATH


@dataclass
class SleepRecorder:
    """Stands in for time.sleep: records each wait instead of waiting."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@dataclass
class FakeClock:
    now: float = 1_736_936_430.0  # 2025-01-15T10:20:30Z

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class RecordingMetrics:
    counts: dict[str, float] = field(default_factory=dict)

    def add_metric(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class SlackStandIn:
    """A real HTTP server on 127.0.0.1 that answers webhook POSTs from a script of responses."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: list[tuple[int, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with stand_in._lock:
                    stand_in.requests.append(Recorded(self.path, dict(self.headers.items()), body))
                    status, headers, reply = stand_in._script.pop(0) if stand_in._script else (200, {}, b"ok")
                # Some servers echo the request in errors; "{path}" lets a test prove we redact it.
                reply = reply.replace(b"{path}", self.path.encode())
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                # The default writes the request line, secret path included, to stderr.
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll keeps shutdown() (and so each test's teardown) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def script(self, *responses: tuple[int, dict[str, str], bytes]) -> None:
        with self._lock:
            self._script.extend(responses)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    server = SlackStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback webhook URL on a port nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


@pytest.fixture
def sns_publisher() -> type[SnsGateway]:
    """The real SNS gateway class, to wrap a moto boto3 client with."""
    return SnsGateway


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override, so boto3 under moto can never reach a real service."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
