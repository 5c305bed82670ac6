"""Real parts over real HTTP on loopback: moto's server as AWS, the Slack stand-in, subprocess CLIs."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS
from deputy_guard.embedded import EmbeddedAws, SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("deputy-guard"))

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmbeddedAws]:
    server = EmbeddedAws().start()
    yield server
    server.stop()


@pytest.fixture
def endpoint(moto_server: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty embedded account; this process's boto3 points at it."""
    request = urllib.request.Request(f"{moto_server.url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return moto_server.url


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn().start()
    yield stand_in
    stand_in.stop()


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def cli_env(endpoint: str, **extra: str) -> dict[str, str]:
    """The environment a user's shell would have: credentials, endpoint, and nothing of this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        DEPUTY_GUARD_TABLE="deputy-guard-e2e",
        DEPUTY_GUARD_SIGNING_KEY=DEFAULT_SIGNING_KEY_ALIAS,
    )
    env.update(extra)
    return env


def create_role(name: str, document: dict[str, Any], **kwargs: Any) -> str:
    response = client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document), **kwargs)
    return str(response["Role"]["Arn"])


def trust(name: str) -> dict[str, Any]:
    document = client("iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    return json.loads(document) if isinstance(document, str) else dict(document)
