"""Fixtures for the Slack approval tests: a moto account with approvals on, notices with buttons, signed clicks."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.adapters import aws
from chalicelib.adapters.tokens import DynamoTokenStore
from chalicelib.domain.models import Notice
from chalicelib.domain.render_slack import render_slack
from chalicelib.domain.slack_actions import SIGNATURE_HEADER, TIMESTAMP_HEADER, MessageKind, sign
from chalicelib.runtime import container
from chalicelib.runtime.slack_approvals import button_minter
from chalicelib.service.approvals import ButtonMinter
from chalicelib.service.enforce import handle_event
from tests.notify.conftest import make_notice
from tests.world import VULNERABLE, World

__all__ = ["make_notice"]

SECRET = "test-signing-secret-0f3c9a"
APPROVER = "U0APPROVER1"
STRANGER = "U0STRANGER9"
RESPONSE_BASE = "https://hooks.slack.com/actions/"
RESPONSE_URL = RESPONSE_BASE + "T0TEST0000/1234567890/abcdefABCDEF"
APPROVAL_SETTINGS = {
    "mode": "notify",
    "slack_webhook_url": "https://hooks.slack.com/services/T0TEST/B0TEST/never-called",
    "slack_approvers": APPROVER,
    "slack_signing_secret": SECRET,
}


def form_body(payload: dict[str, Any]) -> bytes:
    return ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()


def click_payload(
    token: str,
    action_id: str,
    *,
    user: str = APPROVER,
    block_id: str = "deputy-guard-actions",
    response_url: str = RESPONSE_URL,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A block_actions payload in the shape Slack sends (see bolt-python's scenario tests)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST0000"},
        "api_app_id": "A0TEST0000",
        "token": "legacy-verification-token-unused",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0TEST0000"},
        "trigger_id": "1234.5678.abcdef",
        "team": {"id": "T0TEST0000", "domain": "deputy-guard-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C0TEST0000", "name": "security"},
        "message": message or {"type": "message", "text": "deputy-guard", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": token,
                "type": "button",
                "action_ts": "1700000100.000200",
            }
        ],
    }


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def buttons_of(message: dict[str, Any]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = (element["value"], block["block_id"])
    return found


def cloudtrail(role_name: str, event_id: str = "0b7f4d2e-1c3a-4e5f-9a8b-7c6d5e4f3a2b") -> dict[str, Any]:
    """A CreateRole event as EventBridge delivers it (only the fields the bot reads matter)."""
    return {
        "version": "0",
        "id": f"envelope-{event_id}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": "111122223333",
        "time": "2026-11-20T09:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEBOB000001",
                "arn": "arn:aws:iam::111122223333:user/bob",
                "accountId": "111122223333",
                "userName": "bob",
            },
            "eventTime": "2026-11-20T09:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateRole",
            "awsRegion": "us-east-1",
            "requestParameters": {"roleName": role_name},
            "responseElements": None,
            "eventID": event_id,
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        },
    }


@dataclass
class Approvals:
    """A moto account with approvals on, the app's route in process, and the messages Slack would show."""

    world: World
    minter: ButtonMinter
    tokens: DynamoTokenStore
    client: Client
    messages: list[dict[str, Any]] = field(default_factory=list)

    def alert(self, role_name: str, document: dict[str, Any] | None = None, **tags: str) -> dict[str, Any]:
        """Create the role, run its CloudTrail event, and return the Slack message its owner would see."""
        self.world.create_role(role_name, document if document is not None else VULNERABLE, tags=tags or None)
        handle_event(cloudtrail(role_name, event_id=f"evt-{role_name}"), self.world.deps)
        notice = next(n for n in self.world.notifier.single if n.role_name == role_name)
        return self.render(notice)

    def render(self, notice: Notice, kind: MessageKind = MessageKind.ROLE) -> dict[str, Any]:
        message = render_slack(self.minter.mint(notice, kind))
        self.messages.append(message)
        return message

    def click(
        self,
        message: dict[str, Any],
        action_id: str,
        *,
        user: str = APPROVER,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Any:
        token, block_id = buttons_of(message)[action_id]
        payload = click_payload(token, action_id, user=user, block_id=block_id, message=message)
        raw = body if body is not None else form_body(payload)
        return self.client.http.post("/slack/actions", headers=headers or signed_headers(raw), body=raw)


@pytest.fixture
def approvals(make_world: Callable[..., World]) -> Any:
    world = make_world(**APPROVAL_SETTINGS)
    container.install(world.deps)
    table = aws.DynamoTable(aws.make_client("dynamodb"), world.deps.settings.table)
    minter = button_minter(world.deps.settings, table, world.deps.logger, world.deps.metrics)
    assert minter is not None
    with Client(app_module.app) as client:
        yield Approvals(world=world, minter=minter, tokens=DynamoTokenStore(table), client=client)
