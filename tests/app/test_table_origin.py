"""The bot works only with the audit table its stack created: a table deleted and created again is refused.

The attacker deleted the audit table (destroying the trail, the Slack tokens and the originals) and created an
empty one under the same name, with no resource policy: same name, same ARN. It is younger than the signing key.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import boto3
import moto.kms.models
import pytest
from chalice.test import Client
from moto import mock_aws

import app as app_module
from chalicelib.adapters import aws
from chalicelib.runtime import container
from chalicelib.runtime.container import Misconfigured
from tests.world import VULNERABLE, load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
TABLE = "deputy-guard-prod-Table-1A2B3C"
ROLE = "order-pipeline-sfn"  # the role of CreateRole-states-vulnerable.json


def signing_key(monkeypatch: pytest.MonkeyPatch, *, hours_ago: float) -> str:
    """An HMAC key created ``hours_ago`` (the stack created it with its table)."""
    created = time.time() - hours_ago * 3600
    with monkeypatch.context() as patch:
        patch.setattr(moto.kms.models, "unix_time", lambda *_: created)
        key = boto3.client("kms", region_name="us-east-1").create_key(
            KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"
        )
    return str(key["KeyMetadata"]["Arn"])


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A deployed function's environment in an account with a vulnerable role, enforce mode."""
    with mock_aws():
        aws.reset_clients()
        container.reset()
        boto3.client("iam", region_name="us-east-1").create_role(
            RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(VULNERABLE)
        )
        for name, value in {
            "DEPUTY_GUARD_TABLE": TABLE,
            "DEPUTY_GUARD_MODE": "enforce",
            "DEPUTY_GUARD_SELF_ROLE_ARN": "arn:aws:iam::111122223333:role/deputy-guard-prod-OnIamEventRole-1A2B3C",
            "AWS_LAMBDA_FUNCTION_NAME": "deputy-guard-prod-OnIamEvent-1A2B3C",
        }.items():
            monkeypatch.setenv(name, value)
        yield monkeypatch
        container.reset()


def deployed_client() -> Client:
    """The app's test client without the project's stage settings: the environment set above is the deployment's."""
    return Client(app_module.app, stage_name="test", project_dir=tempfile.gettempdir())


def trust() -> Any:
    document = boto3.client("iam", region_name="us-east-1").get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def test_a_table_created_again_after_the_key_is_refused(deployed: pytest.MonkeyPatch) -> None:
    # Given the stack's key, made two hours ago, and a table of the same name created just now
    deployed.setenv("DEPUTY_GUARD_SIGNING_KEY", signing_key(deployed, hours_ago=2))
    aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
    # When an event that needs work arrives
    with deployed_client() as client, pytest.raises(Misconfigured, match="not the table"):
        client.lambda_.invoke("on_iam_event", load_event("CreateRole-states-vulnerable.json"))
    # Then the bot did nothing with it: no record written, the role untouched
    assert trust() == VULNERABLE
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"]
    assert items == []


def test_the_stacks_own_table_is_used(deployed: pytest.MonkeyPatch) -> None:
    # Given the key and the table created together (the stack), and an event that needs work
    deployed.setenv("DEPUTY_GUARD_SIGNING_KEY", signing_key(deployed, hours_ago=0))
    aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
    with deployed_client() as client:
        answer = client.lambda_.invoke("on_iam_event", load_event("CreateRole-states-vulnerable.json")).payload
    # Then the role is fixed, under a signed record
    assert answer["action"] == "fixed" and trust() != VULNERABLE
