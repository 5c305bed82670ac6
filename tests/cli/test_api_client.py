"""`deputy-guard api ...` over real HTTP: the app's routes (Chalice's local server) behind a gateway that checks
SigV4 as API Gateway's IAM authorisation does, recomputing each signature with botocore.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import app as app_module
from chalicelib.adapters import aws
from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS as SIGNING_KEY
from chalicelib.adapters.kms import ensure_mac_key
from chalicelib.runtime import container
from deputy_guard import cli
from deputy_guard.embedded import LocalApi
from tests.e2e.conftest import create_role, trust
from tests.world import FOREIGN, VULNERABLE

pytestmark = pytest.mark.e2e
TABLE = "deputy-guard-api-e2e"
KEY, SECRET, TOKEN = "testing", "testing", "testing"  # what tests/conftest.py gives this process
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/execute-api/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


class SigV4Gateway:
    """Verifies each request's SigV4 signature (403 if wrong), then forwards it to the local API."""

    def __init__(self, upstream: str, secret: str = SECRET) -> None:
        self.upstream = upstream
        self.secret = secret
        self.seen: list[dict[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.handle(self)

            def do_POST(self) -> None:
                gateway.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
        match = AUTHORIZATION.match(headers.get("authorization", ""))
        if match is None or match["key"] != KEY:
            return False
        signed = match["signed"].split(";")
        request = AWSRequest(
            method=method,
            url=f"http://{headers['host']}{path}",
            data=body,
            headers={name: headers[name] for name in signed},
        )
        request.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(KEY, self.secret, TOKEN), "execute-api", match["region"])
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        return expected == match["signature"]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.seen.append(headers)
        if not self.verify(handler.command, handler.path, headers, body):
            status, answer = 403, b'{"message": "The request signature we calculated does not match"}'
        else:
            path = handler.path.removeprefix("/api")
            forward = urllib.request.Request(
                self.upstream + path,
                data=body or None,
                method=handler.command,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(forward, timeout=60) as response:
                    status, answer = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, exc.read()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SigV4Gateway]:
    settings = {"DEPUTY_GUARD_MODE": "notify", "DEPUTY_GUARD_TABLE": TABLE, "DEPUTY_GUARD_SIGNING_KEY": SIGNING_KEY}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    container.reset()
    aws.reset_clients()
    aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
    ensure_mac_key(aws.make_client("kms"), SIGNING_KEY)
    api = LocalApi(app_module.app).start()
    front = SigV4Gateway(api.url)
    monkeypatch.setenv("DEPUTY_GUARD_API_URL", front.url)
    yield front
    front.stop()
    api.stop()
    container.reset()


CallApi = Callable[..., tuple[int, Any]]


@pytest.fixture
def call(capsys: pytest.CaptureFixture[str]) -> CallApi:
    def run(*argv: str) -> tuple[int, Any]:
        status = cli.main(["api", *argv])
        captured = capsys.readouterr()
        return status, json.loads(captured.out) if captured.out.strip() else captured.err

    return run


def test_every_request_carries_a_sigv4_signature_from_the_credential_chain(
    gateway: SigV4Gateway, call: CallApi
) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    status, body = call("role", "vulnerable-sfn")
    assert status == 0 and body["action"] == "would_fix"
    (headers,) = gateway.seen
    match = AUTHORIZATION.match(headers["authorization"])
    assert match is not None and match["key"] == KEY and match["region"] == "us-east-1"
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(match["signed"].split(";"))
    assert headers["x-amz-security-token"] == TOKEN


def test_scans_follow_every_page_into_one_report(gateway: SigV4Gateway, call: CallApi) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    create_role("foreign-sfn", FOREIGN)
    status, report = call("scans")
    assert status == 1  # findings left to act on: the exit status `deputy-guard scan` gives
    assert report["complete"] is True and report["schema_version"] == "1"
    assert {r["role_name"]: r["action"] for r in report["results"]} == {
        "vulnerable-sfn": "would_fix",
        "foreign-sfn": "review",
    }


def test_remediate_then_revert_then_revert_again(gateway: SigV4Gateway, call: CallApi) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    status, fixed = call("remediate", "vulnerable-sfn")
    assert status == 0 and fixed["action"] == "fixed" and trust("vulnerable-sfn") != VULNERABLE
    status, reverted = call("revert", "vulnerable-sfn")
    assert status == 0 and reverted["status"] == "reverted" and trust("vulnerable-sfn") == VULNERABLE
    status, again = call("revert", "vulnerable-sfn")
    assert status == 0 and again["status"] == "already_reverted"


def test_a_refusal_is_exit_1_with_the_answer(gateway: SigV4Gateway, call: CallApi) -> None:
    create_role("foreign-sfn", FOREIGN)
    status, body = call("remediate", "foreign-sfn")
    assert status == 1 and body["action"] == "review"


def test_an_unknown_role_is_exit_2_and_one_line(gateway: SigV4Gateway, call: CallApi) -> None:
    status, err = call("role", "nope")
    assert status == 2
    assert err.count("\n") == 1 and "GET /roles/nope answered 404" in err


def test_a_bad_signature_is_refused_and_reported(gateway: SigV4Gateway, call: CallApi) -> None:
    gateway.secret = "not-the-callers-secret"
    status, err = call("role", "anything")
    assert status == 2 and "answered 403" in err and err.count("\n") == 1


def test_the_url_comes_from_the_flag_first(
    gateway: SigV4Gateway, call: CallApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    monkeypatch.setenv("DEPUTY_GUARD_API_URL", "http://127.0.0.1:9/nowhere")
    status, body = call("--url", gateway.url, "role", "vulnerable-sfn")
    assert status == 0 and body["role_name"] == "vulnerable-sfn"
    monkeypatch.delenv("DEPUTY_GUARD_API_URL")
    status, err = call("role", "vulnerable-sfn")
    assert status == 2 and "DEPUTY_GUARD_API_URL" in err


def test_the_signing_region_is_the_urls() -> None:
    from deputy_guard.api_client import signing_region

    class Session:
        def get_config_variable(self, name: str) -> str:
            return "us-east-1"

    assert signing_region("https://abc123.execute-api.eu-west-3.amazonaws.com/api", Session()) == "eu-west-3"
    assert signing_region("https://api.example.com/deputy-guard", Session()) == "us-east-1"
