"""An organization on the embedded AWS over real HTTP: moto's server, 11 member accounts, one broken."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS, ensure_mac_key
from deputy_guard.embedded import EmbeddedAws
from deputy_guard.embedded_org import Organization, create_work_queues, member_iam, seed_organization

CLI = str(Path(sys.executable).with_name("deputy-guard"))
MEMBERS = 11
BROKEN = 10  # the last member gets no deputy-guard-member role
TABLE = "deputy-guard-org"
BOT_ROLE = "deputy-guard-prod-on_iam_event"
VULNERABLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
LAMBDA_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def org_server() -> Iterator[EmbeddedAws]:
    server = EmbeddedAws().start()
    yield server
    server.stop()


@dataclass
class OrgWorld:
    server: EmbeddedAws
    org: Organization
    queue: str
    dlq: str

    @property
    def healthy(self) -> list[str]:
        return [a for a in self.org.members if a not in self.org.without_member_role]

    @property
    def broken(self) -> str:
        return self.org.without_member_role[0]

    def trust(self, account: str, role: str) -> dict[str, Any]:
        document = member_iam(account).get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        return json.loads(document) if isinstance(document, str) else dict(document)

    def cli_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
        env.update(
            AWS_ENDPOINT_URL=self.server.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            DEPUTY_GUARD_TABLE=TABLE,
            DEPUTY_GUARD_SIGNING_KEY=DEFAULT_SIGNING_KEY_ALIAS,
        )
        env.update(extra)
        return env


@pytest.fixture
def org_world(org_server: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> OrgWorld:
    """A fresh organization: the management account (where the bot runs) and 11 members, the last one broken.

    Each healthy member holds ``orders-sfn`` (vulnerable) and ``thumbnails`` (Lambda only).
    """
    from chalicelib.adapters import aws
    from chalicelib.runtime import container

    urllib.request.urlopen(urllib.request.Request(f"{org_server.url}/moto-api/reset", method="POST"), timeout=10)
    # moto answers for the account of each request's access key only without a fixed account id.
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", org_server.url)
    org = seed_organization(MEMBERS, broken=[BROKEN])
    for account in org.members:
        if account in org.without_member_role:
            continue
        iam = member_iam(account)
        iam.create_role(RoleName="orders-sfn", AssumeRolePolicyDocument=json.dumps(VULNERABLE))
        iam.create_role(RoleName="thumbnails", AssumeRolePolicyDocument=json.dumps(LAMBDA_ONLY))
    queue, dlq = create_work_queues("deputy-guard-work", visibility_seconds=60, max_receives=2)
    monkeypatch.setenv("DEPUTY_GUARD_TABLE", TABLE)
    monkeypatch.setenv("DEPUTY_GUARD_SIGNING_KEY", DEFAULT_SIGNING_KEY_ALIAS)
    monkeypatch.setenv("DEPUTY_GUARD_MODE", "enforce")
    monkeypatch.setenv("DEPUTY_GUARD_SELF_ROLE_ARN", f"arn:aws:iam::{org.management}:role/{BOT_ROLE}")
    aws.reset_clients()
    container.reset()
    aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
    ensure_mac_key(aws.make_client("kms"), DEFAULT_SIGNING_KEY_ALIAS)
    return OrgWorld(org_server, org, queue, dlq)


@pytest.fixture
def lambda_client() -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="org", project_dir=tempfile.gettempdir()) as client:
        yield client


def sqs() -> Any:
    return boto3.client("sqs", region_name="us-east-1")
