"""Slack approvals end to end: moto's server as AWS, the Slack stand-in, the app's real route over HTTP.

Each click is what Slack posts: a form-encoded ``block_actions`` payload, signed with the app's signing
secret, sent to ``POST /slack/actions`` on the local API; the answer comes back in the response and on the
stand-in's response URL.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.adapters import aws
from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS, ensure_mac_key
from chalicelib.domain.models import Verdict
from chalicelib.domain.plan import EXEMPT_UNTIL_TAG, MODE_TAG, REASON_TAG
from chalicelib.runtime import container
from deputy_guard.demo_approval import buttons_of, click_body, post_click
from deputy_guard.embedded import LocalApi, SlackStandIn
from tests.e2e.conftest import client, create_role, trust
from tests.world import VULNERABLE

pytestmark = pytest.mark.e2e

SECRET = "e2e-signing-secret-5d1b"
APPROVER = "U0APPROVER1"
STRANGER = "U0STRANGER9"
TABLE = "deputy-guard-e2e-approvals"
ACCOUNT = "111122223333"
_sequence = itertools.count(1)


@dataclass
class Bot:
    api: str
    slack: SlackStandIn

    def alert(self, role_name: str, document: dict[str, Any] = VULNERABLE, **tags: str) -> dict[str, Any]:
        """Create a role, deliver its CreateRole event to on_iam_event, return the alert Slack received."""
        create_role(role_name, document, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        event = {
            "version": "0",
            "id": f"e2e-{next(_sequence)}",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "account": ACCOUNT,
            "time": "2026-11-20T09:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventSource": "iam.amazonaws.com",
                "eventName": "CreateRole",
                "eventID": f"e2e-event-{next(_sequence)}",
                "awsRegion": "us-east-1",
                "requestParameters": {"roleName": role_name},
                "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/bob", "accountId": ACCOUNT},
            },
        }
        # Not the project's stage config (its dev stage names another table): the environment set above.
        with Client(app_module.app, stage_name="e2e", project_dir=tempfile.gettempdir()) as lambdas:
            lambdas.lambda_.invoke("on_iam_event", event)
        return next(m for m in reversed(self.slack.received) if role_name in m.get("text", ""))

    def click(
        self,
        message: dict[str, Any],
        action_id: str,
        *,
        user: str = APPROVER,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        token, block_id = buttons_of(message)[action_id]
        body = click_body(
            user=user,
            action_id=action_id,
            token=token,
            block_id=block_id,
            response_url=self.slack.response_url(f"T0E2E/{next(_sequence)}/one-time"),
            message=message,
        )
        status, answer, _seconds = post_click(self.api, body, secret=secret, timestamp=timestamp)
        return status, answer

    def last_response(self) -> dict[str, Any]:
        return self.slack.responses[-1]

    def history(self, role_name: str) -> list[Any]:
        role = client("iam").get_role(RoleName=role_name)["Role"]
        return container.deps().audit.history(role["Arn"])

    def tags(self, role_name: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in client("iam").list_role_tags(RoleName=role_name)["Tags"]}

    def token_item(self, message: dict[str, Any], action_id: str) -> dict[str, Any]:
        token, _block = buttons_of(message)[action_id]
        item = client("dynamodb").get_item(
            TableName=TABLE, Key={"pk": {"S": f"approval#{token}"}, "sk": {"S": "token"}}, ConsistentRead=True
        )["Item"]
        return item


@pytest.fixture
def start_bot(endpoint: str, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Bot]]:
    servers: list[LocalApi] = []

    def start(mode: str = "notify") -> Bot:
        settings = {
            "DEPUTY_GUARD_MODE": mode,
            "DEPUTY_GUARD_TABLE": TABLE,
            "DEPUTY_GUARD_SLACK_WEBHOOK_URL": slack.url,
            "DEPUTY_GUARD_SLACK_APPROVERS": APPROVER,
            "DEPUTY_GUARD_SLACK_SIGNING_SECRET": SECRET,
            "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": slack.response_base,
            "DEPUTY_GUARD_SELF_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/deputy-guard-e2e",
            "DEPUTY_GUARD_SIGNING_KEY": DEFAULT_SIGNING_KEY_ALIAS,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        container.reset()
        aws.DynamoTable(aws.make_client("dynamodb"), TABLE).ensure_exists()
        ensure_mac_key(aws.make_client("kms"), DEFAULT_SIGNING_KEY_ALIAS)
        api = LocalApi(app_module.app).start()
        servers.append(api)
        return Bot(api.url, slack)

    yield start
    for api in servers:
        api.stop()
    container.reset()


@pytest.fixture
def bot(start_bot: Callable[..., Bot]) -> Bot:
    return start_bot()


# --- the signature comes first -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "age", "what"),
    [("not-the-apps-secret", 0, "bad"), (SECRET, 301, "stale"), (SECRET, -301, "from the future")],
)
def test_a_bad_or_stale_signature_is_401_and_changes_nothing(bot: Bot, secret: str, age: int, what: str) -> None:
    # Given an alert with an Apply fix button
    message = bot.alert("orders-sfn")
    # When a click arrives signed with the wrong secret, or outside the five-minute window
    status, answer = bot.click(message, "apply_fix", secret=secret, timestamp=int(time.time()) - age)
    # Then it is refused before anything is read: the role, the token and the message are untouched
    assert status == 401, what
    assert answer["Code"] == "Unauthorized"
    assert trust("orders-sfn") == VULNERABLE
    assert bot.token_item(message, "apply_fix")["used"] == {"BOOL": False}
    assert bot.slack.responses == []


def test_a_missing_signature_is_401(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    token, block = buttons_of(message)["apply_fix"]
    body = click_body(
        user=APPROVER, action_id="apply_fix", token=token, block_id=block, response_url=bot.slack.response_url()
    )
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{bot.api}/slack/actions", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 401
    assert trust("orders-sfn") == VULNERABLE


# --- an approved click -----------------------------------------------------------------------------------


def test_an_approver_applies_the_fix_and_the_message_says_who(bot: Bot) -> None:
    # Given a notify-mode alert for a vulnerable role, with its buttons
    message = bot.alert("orders-sfn", owner="payments")
    assert set(buttons_of(message)) == {"apply_fix", "exempt_30d"}
    # When an approver clicks Apply fix
    status, answer = bot.click(message, "apply_fix")
    # Then the fix is applied through the remediate pipeline, recorded with the Slack user as actor
    assert status == 200
    assert trust("orders-sfn")["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    [fix] = bot.history("orders-sfn")
    assert (fix.kind.value, fix.status.value, fix.actor, fix.trigger) == (
        "fix",
        "applied",
        f"slack:{APPROVER}",
        "slack",
    )
    # And the message is replaced, through response_url, by one that says what happened and offers Revert
    updated = bot.last_response()
    assert updated["replace_original"] is True and answer == {k: v for k, v in updated.items() if k != "path"}
    assert "Trust policy fixed" in updated["blocks"][0]["text"]["text"]
    assert f"slack:{APPROVER}" in json.dumps(updated["blocks"])
    assert set(buttons_of(updated)) == {"revert"}


def test_a_click_by_someone_who_is_not_an_approver_is_refused_privately(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    status, answer = bot.click(message, "apply_fix", user=STRANGER)
    assert status == 200
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "not one of them" in answer["text"] and "Nothing was changed" in answer["text"]
    assert trust("orders-sfn") == VULNERABLE
    assert bot.token_item(message, "apply_fix")["used"] == {"BOOL": False}  # the approver can still use it
    assert bot.last_response()["response_type"] == "ephemeral"


def test_a_replayed_click_is_refused_and_acts_once(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    assert bot.click(message, "apply_fix")[0] == 200
    fixed = trust("orders-sfn")
    # When the same button is clicked again (a double click, a retry, a replay within the window)
    status, answer = bot.click(message, "apply_fix")
    # Then only the clicker is told, and nothing happens twice
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert "already used" in answer["text"]
    assert trust("orders-sfn") == fixed
    assert len(bot.history("orders-sfn")) == 1


def test_a_role_changed_since_the_message_is_not_touched(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    # Given someone edits the trust policy after the alert went out
    changed = {**VULNERABLE, "Statement": [{**VULNERABLE["Statement"][0], "Sid": "EditedByHand"}]}
    client("iam").update_assume_role_policy(RoleName="orders-sfn", PolicyDocument=json.dumps(changed))
    # When the approver clicks Apply fix on the old message
    status, answer = bot.click(message, "apply_fix")
    # Then it is refused: the fix shown is not the fix for what the role holds now
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert "changed since this message was sent" in answer["text"]
    assert trust("orders-sfn") == changed
    assert bot.history("orders-sfn") == []
    assert bot.token_item(message, "apply_fix")["used"] == {"BOOL": False}


def test_an_expired_button_is_refused(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    # Given the token's seven days are over (DynamoDB's TTL deletes it later; expiry is checked on use)
    token, _block = buttons_of(message)["apply_fix"]
    client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"approval#{token}"}, "sk": {"S": "token"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    status, answer = bot.click(message, "apply_fix")
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert "expired" in answer["text"]
    assert trust("orders-sfn") == VULNERABLE


def test_tokens_carry_a_ttl_for_dynamodb_and_a_seven_day_expiry(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    item = bot.token_item(message, "apply_fix")
    expires = int(item["expires_at"]["N"])
    assert abs(expires - (time.time() + 7 * 24 * 3600)) < 60
    assert int(item["expiration"]["N"]) > expires
    assert item["role_arn"]["S"] == f"arn:aws:iam::{ACCOUNT}:role/orders-sfn"
    assert item["account"]["S"] == ACCOUNT and item["action"]["S"] == "apply_fix"
    assert len(item["document_digest"]["S"]) == len(item["plan_digest"]["S"]) == 64


def test_exempt_30_days_tags_the_role_until_a_date_and_the_bot_leaves_it_alone(bot: Bot) -> None:
    message = bot.alert("orders-sfn")
    status, answer = bot.click(message, "exempt_30d")
    assert status == 200 and answer["replace_original"] is True
    tags = bot.tags("orders-sfn")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 24 * 3600))
    assert tags[MODE_TAG] == "exempt" and tags[EXEMPT_UNTIL_TAG] == until
    assert f"slack:{APPROVER}" in tags[REASON_TAG] and today in tags[REASON_TAG]
    assert trust("orders-sfn") == VULNERABLE
    [record] = bot.history("orders-sfn")
    assert (record.kind.value, record.status.value, record.actor) == ("exempt", "applied", f"slack:{APPROVER}")
    # And the role's own REST evaluation now plans nothing for it
    with Client(app_module.app, stage_name="e2e", project_dir=tempfile.gettempdir()) as rest:
        planned = rest.http.get("/roles/orders-sfn").json_body
    assert planned["verdict"] == Verdict.NON_COMPLIANT.value and planned["action"] == "exempt"
    # And its other button no longer applies a fix: the role is exempt
    status, answer = bot.click(message, "apply_fix")
    assert answer["response_type"] == "ephemeral" and "exempt" in answer["text"]
    assert trust("orders-sfn") == VULNERABLE


def test_revert_restores_the_original_the_bot_recorded(start_bot: Callable[..., Bot]) -> None:
    # Given enforce mode: the bot fixes the role and its message offers Revert
    bot = start_bot("enforce")
    message = bot.alert("orders-sfn")
    assert set(buttons_of(message)) == {"revert"}
    assert trust("orders-sfn") != VULNERABLE
    # When an approver clicks Revert
    status, answer = bot.click(message, "revert")
    # Then the recorded original is back, the role is exempt, and the revert names the Slack user
    assert status == 200 and answer["replace_original"] is True
    assert trust("orders-sfn") == VULNERABLE
    assert bot.tags("orders-sfn")[MODE_TAG] == "exempt"
    revert, fix = bot.history("orders-sfn")
    assert (revert.kind.value, revert.status.value, revert.actor) == ("revert", "applied", f"slack:{APPROVER}")
    assert (fix.kind.value, fix.status.value) == ("fix", "reverted")
    assert "Fix reverted" in answer["blocks"][0]["text"]["text"]


def test_revert_is_refused_when_the_role_changed_after_the_fix(start_bot: Callable[..., Bot]) -> None:
    bot = start_bot("enforce")
    message = bot.alert("orders-sfn")
    edited = trust("orders-sfn")
    edited["Statement"][0]["Sid"] = "LaterChange"
    client("iam").update_assume_role_policy(RoleName="orders-sfn", PolicyDocument=json.dumps(edited))
    status, answer = bot.click(message, "revert")
    # Slack never forces: the later change is kept
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert trust("orders-sfn") == edited
    assert [r.kind.value for r in bot.history("orders-sfn")] == ["fix"]


def test_revert_is_refused_when_the_record_does_not_verify(start_bot: Callable[..., Bot]) -> None:
    # Given the bot's fix, whose record someone with dynamodb:UpdateItem stripped of its signature
    bot = start_bot("enforce")
    message = bot.alert("orders-sfn")
    fixed = trust("orders-sfn")
    [record] = bot.history("orders-sfn")
    client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": record.pk}, "sk": {"S": record.sk}},
        UpdateExpression="REMOVE signature",
    )
    # When an approver clicks Revert
    status, answer = bot.click(message, "revert")
    # Then nothing is written, and the answer names the record
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert record.change_id in answer["text"] and "unsigned" in answer["text"]
    assert trust("orders-sfn") == fixed
    assert MODE_TAG not in bot.tags("orders-sfn")
    assert [r.kind.value for r in bot.history("orders-sfn")] == ["fix"]


def test_no_approvers_means_no_buttons(start_bot: Callable[..., Bot], monkeypatch: pytest.MonkeyPatch) -> None:
    bot = start_bot()
    monkeypatch.delenv("DEPUTY_GUARD_SLACK_APPROVERS")
    container.reset()
    message = bot.alert("orders-sfn")
    assert buttons_of(message) == {}
    assert not any(block["type"] == "actions" for block in message["blocks"])
