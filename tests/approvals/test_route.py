"""POST /slack/actions in process (chalice.test.Client on moto): what is read before the signature, and the refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

import app as app_module
from chalicelib.adapters.slack_interactivity import ResponsePoster
from chalicelib.domain.models import Action
from chalicelib.domain.plan import MODE_TAG
from chalicelib.domain.policy import parse_policy
from chalicelib.domain.render_slack import render_slack_digest
from chalicelib.domain.slack_actions import ApprovalToken, MessageKind, document_digest
from tests.approvals.conftest import (
    APPROVER,
    STRANGER,
    Approvals,
    buttons_of,
    click_payload,
    form_body,
    signed_headers,
)
from tests.world import FOREIGN, VULNERABLE


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What the route sent to response_url (recorded instead of leaving the machine)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(self: ResponsePoster, url: str, payload: dict[str, Any]) -> str | None:
        sent.append((url, payload))
        return None

    monkeypatch.setattr(ResponsePoster, "post", record)
    return sent


def aws_calls(approvals: Approvals) -> int:
    return sum(approvals.world.calls.values())


def test_the_route_is_the_only_one_without_iam_auth() -> None:
    routes = app_module.app.routes
    assert routes["/slack/actions"]["POST"].authorizer is None
    assert routes["/slack/actions"]["POST"].content_types == ["application/x-www-form-urlencoded"]
    others = [entry for path, methods in routes.items() if path != "/slack/actions" for entry in methods.values()]
    assert others and all(entry.authorizer is not None for entry in others)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Signature": "v0=" + "0" * 64},
        {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(int(time.time()))},
    ],
)
def test_an_unsigned_request_reads_nothing(approvals: Approvals, posted: list[Any], headers: dict[str, str]) -> None:
    message = approvals.alert("orders-sfn")
    before = aws_calls(approvals)
    token, _ = buttons_of(message)["apply_fix"]
    response = approvals.client.http.post(
        "/slack/actions", headers=headers, body=form_body(click_payload(token, "apply_fix"))
    )
    assert response.status_code == 401
    assert aws_calls(approvals) == before  # no table read, no IAM call
    assert posted == []


def test_a_bad_signature_reads_nothing(approvals: Approvals, posted: list[Any]) -> None:
    message = approvals.alert("orders-sfn")
    before = aws_calls(approvals)
    token, _ = buttons_of(message)["apply_fix"]
    body = form_body(click_payload(token, "apply_fix"))
    response = approvals.click(message, "apply_fix", headers=signed_headers(body, secret="guessed"), body=body)
    assert response.status_code == 401 and aws_calls(approvals) == before and posted == []


def test_another_content_type_is_turned_away_before_the_handler(approvals: Approvals) -> None:
    response = approvals.client.http.post("/slack/actions", headers={"Content-Type": "application/json"}, body="{}")
    assert response.status_code == 415


def test_a_signed_body_that_is_not_a_click_is_400(approvals: Approvals, posted: list[Any]) -> None:
    body = b"token=abc&command=%2Fdeploy"
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert response.status_code == 400 and posted == []


def test_a_stranger_is_refused_without_a_table_read(approvals: Approvals, posted: list[Any]) -> None:
    message = approvals.alert("orders-sfn")
    before = dict(approvals.world.calls)
    response = approvals.click(message, "apply_fix", user=STRANGER)
    assert response.status_code == 200
    assert response.json_body["response_type"] == "ephemeral"
    assert dict(approvals.world.calls) == before
    assert posted[-1][1] == response.json_body


def test_an_approved_click_answers_in_the_response_and_through_response_url(
    approvals: Approvals, posted: list[Any]
) -> None:
    message = approvals.alert("orders-sfn")
    response = approvals.click(message, "apply_fix")
    assert response.status_code == 200
    [(url, payload)] = posted
    assert url.startswith("https://hooks.slack.com/actions/") and payload == response.json_body
    assert payload["replace_original"] is True
    assert approvals.world.trust("orders-sfn") != VULNERABLE


def test_an_unknown_token_is_refused(approvals: Approvals, posted: list[Any]) -> None:
    body = form_body(click_payload("Z" * 32, "apply_fix"))
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert response.json_body["response_type"] == "ephemeral" and "does not know" in response.json_body["text"]


def test_a_token_used_for_another_action_is_refused(approvals: Approvals, posted: list[Any]) -> None:
    message = approvals.alert("orders-sfn")
    exempt_token, block = buttons_of(message)["exempt_30d"]
    body = form_body(click_payload(exempt_token, "apply_fix", block_id=block))
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert "does not know" in response.json_body["text"]
    assert approvals.world.trust("orders-sfn") == VULNERABLE


def test_a_role_tagged_exempt_after_the_message_is_left_alone(approvals: Approvals, posted: list[Any]) -> None:
    message = approvals.alert("orders-sfn")
    approvals.world.iam.tag_role(RoleName="orders-sfn", Tags=[{"Key": MODE_TAG, "Value": "exempt"}])
    response = approvals.click(message, "apply_fix")
    assert response.json_body["response_type"] == "ephemeral" and "is exempt" in response.json_body["text"]
    assert approvals.world.trust("orders-sfn") == VULNERABLE
    assert approvals.tokens.get(buttons_of(message)["apply_fix"][0]).used is False  # type: ignore[union-attr]


def test_a_needs_review_role_is_never_rewritten(approvals: Approvals, posted: list[Any]) -> None:
    # Given a token that matches what the role holds, but the role is one a human must decide about
    arn = approvals.world.create_role("partner-sfn", FOREIGN)
    token = ApprovalToken(
        token_id="R" * 32,
        action="apply_fix",
        account="111122223333",
        role_name="partner-sfn",
        role_arn=arn,
        document_digest=document_digest(parse_policy(json.dumps(FOREIGN))),
        plan_digest=document_digest(VULNERABLE),
        expires_at=int(time.time()) + 3600,
        created_at=int(time.time()),
    )
    approvals.tokens.put(token)
    body = form_body(click_payload(token.token_id, "apply_fix"))
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert response.json_body["response_type"] == "ephemeral"
    assert "needs a human review" in response.json_body["text"]
    assert approvals.world.trust("partner-sfn") == FOREIGN
    assert approvals.tokens.get(token.token_id).used is False  # type: ignore[union-attr]


def test_a_fix_that_differs_from_the_one_shown_is_refused(approvals: Approvals, posted: list[Any]) -> None:
    # Given a token whose planned fix is not what the bot would write now (its settings changed since)
    arn = approvals.world.create_role("orders-sfn", VULNERABLE)
    token = ApprovalToken(
        token_id="P" * 32,
        action="apply_fix",
        account="111122223333",
        role_name="orders-sfn",
        role_arn=arn,
        document_digest=document_digest(parse_policy(json.dumps(VULNERABLE))),
        plan_digest=document_digest({"Version": "2012-10-17", "Statement": []}),
        expires_at=int(time.time()) + 3600,
        created_at=int(time.time()),
    )
    approvals.tokens.put(token)
    body = form_body(click_payload(token.token_id, "apply_fix"))
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert "different fix" in response.json_body["text"]
    assert approvals.world.trust("orders-sfn") == VULNERABLE


def test_a_token_for_a_role_of_the_same_name_elsewhere_is_refused(approvals: Approvals, posted: list[Any]) -> None:
    message = approvals.alert("orders-sfn")
    token = approvals.tokens.get(buttons_of(message)["apply_fix"][0])
    assert token is not None
    other = replace(token, token_id="Q" * 32, role_arn="arn:aws:iam::444455556666:role/orders-sfn")
    approvals.tokens.put(other)
    body = form_body(click_payload(other.token_id, "apply_fix"))
    response = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body)
    assert response.json_body["response_type"] == "ephemeral"
    assert approvals.world.trust("orders-sfn") == VULNERABLE


def test_a_digest_click_updates_only_that_row(
    approvals: Approvals, posted: list[Any], make_world: Callable[..., Any]
) -> None:
    for name in ("alpha-sfn", "beta-sfn"):
        approvals.alert(name)
    notices = [n for n in approvals.world.notifier.single if n.action is Action.NOTIFIED]
    digest = render_slack_digest("team", approvals.minter.for_digest(notices))
    rows = [b for b in digest["blocks"] if b["type"] == "actions"]
    assert len(rows) == 2
    token, block_id = rows[0]["elements"][0]["value"], rows[0]["block_id"]
    body = form_body(click_payload(token, "apply_fix", block_id=block_id, message=digest))
    answer = approvals.client.http.post("/slack/actions", headers=signed_headers(body), body=body).json_body
    assert answer["replace_original"] is True
    changed = [b for a, b in zip(digest["blocks"], answer["blocks"], strict=True) if a != b]
    assert len(changed) == 2
    assert "Fix applied by <@" + APPROVER + ">" in changed[0]["text"]["text"]
    assert [e["action_id"] for e in changed[1]["elements"]] == ["revert"]
    assert answer["blocks"][digest["blocks"].index(rows[1])] == rows[1]  # the other row keeps its buttons


def test_a_token_minted_for_a_digest_remembers_it(approvals: Approvals) -> None:
    approvals.alert("alpha-sfn")
    [notice] = approvals.world.notifier.single
    minted = approvals.minter.mint(notice, MessageKind.DIGEST)
    assert approvals.tokens.get(minted.buttons[0].value).message is MessageKind.DIGEST  # type: ignore[union-attr]
