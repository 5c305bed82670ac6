"""Reading a signed click: only button clicks, only known actions, and a response_url on Slack's hooks host."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from chalicelib.domain.slack_actions import (
    SLACK_RESPONSE_URL_BASE,
    ClickError,
    parse_click,
    response_url_allowed,
    response_url_base_problem,
)
from tests.approvals.conftest import APPROVER, RESPONSE_URL, click_payload, form_body

TOKEN = "Ab3_dEf-GhIjKlMnOpQrStUvWxYz0123"


def parse(payload: Any) -> Any:
    return parse_click(form_body(payload), response_url_base=SLACK_RESPONSE_URL_BASE)


def test_a_button_click_is_read_into_what_the_bot_uses() -> None:
    click = parse(click_payload(TOKEN, "apply_fix", block_id="row-3-actions"))
    assert (click.user_id, click.action_id, click.token_id, click.block_id) == (
        APPROVER,
        "apply_fix",
        TOKEN,
        "row-3-actions",
    )
    assert click.response_url == RESPONSE_URL
    assert (click.team_id, click.channel_id) == ("T0TEST0000", "C0TEST0000")
    assert click.message is not None and click.message["type"] == "message"


def test_a_value_that_cannot_be_a_token_is_kept_as_no_token() -> None:
    assert parse(click_payload("not a token", "apply_fix")).token_id == ""
    assert parse(click_payload(TOKEN + "x", "apply_fix")).token_id == ""


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=",
        b"payload=%7Bnot-json",
        b"payload=%5B%5D",
        b"payload=1&payload=2",
        b"\xff\xfe",
        b"token=abc&command=%2Fdeploy",
        ("payload=" + "%5B" * 100_000).encode(),
        b"payload=" + b"x" * (1024 * 1024 + 1),
    ],
)
def test_bodies_that_are_not_one_interaction_are_refused(body: bytes) -> None:
    with pytest.raises(ClickError):
        parse_click(body, response_url_base=SLACK_RESPONSE_URL_BASE)


def _payload(**changes: Any) -> dict[str, Any]:
    payload = click_payload(TOKEN, "apply_fix")
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (_payload(type="view_submission"), "unsupported interaction type"),
        (_payload(type="interactive_message"), "unsupported interaction type"),
        (_payload(actions=[]), "exactly one action"),
        (_payload(actions="apply_fix"), "exactly one action"),
        (_payload(user={"id": "B0BOT"}), "no Slack user"),
        (_payload(user={"id": "u0lower"}), "no Slack user"),
        (_payload(user=None), "no Slack user"),
        (_payload(response_url=None), "response_url"),
        (_payload(response_url="https://evil.example/actions/T0/1/x"), "response_url"),
    ],
)
def test_signed_but_unusable_payloads_are_refused(payload: dict[str, Any], why: str) -> None:
    with pytest.raises(ClickError, match=why):
        parse(payload)


def test_two_actions_in_one_click_are_refused() -> None:
    payload = click_payload(TOKEN, "apply_fix")
    payload["actions"] = payload["actions"] * 2
    with pytest.raises(ClickError, match="exactly one action"):
        parse(payload)


def test_an_unknown_action_id_is_refused() -> None:
    with pytest.raises(ClickError, match="unknown action"):
        parse(click_payload(TOKEN, "delete_role"))


def test_a_real_shaped_payload_round_trips_through_form_encoding() -> None:
    # Slack sends payload=<url-encoded JSON>; '+' for spaces must decode too.
    payload = click_payload(TOKEN, "exempt_30d")
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    assert b"+" in body
    assert parse_click(body, response_url_base=SLACK_RESPONSE_URL_BASE).action_id == "exempt_30d"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/actions/T0/1/abc",
        "https://hooks.slack.com/commands/T0/1/abc",
        "https://HOOKS.SLACK.COM/actions/T0/1/abc",
        "https://hooks.slack.com:443/actions/T0/1/abc",
    ],
)
def test_slack_hooks_urls_are_allowed(url: str) -> None:
    expected = ":443" not in url  # an explicit port is not what Slack sends: refused as a different origin
    assert response_url_allowed(url, SLACK_RESPONSE_URL_BASE) is expected


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/actions/T0/1/abc",
        "https://hooks.slack.com.evil.example/actions/T0/1/abc",
        "https://hooks.slack.com@evil.example/actions/T0/1/abc",
        "https://user:pass@hooks.slack.com/actions/T0/1/abc",
        "https://evil.example/https://hooks.slack.com/",
        "https://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/actions/x",
        "https://hooks.slack.com:8443/actions/T0/1/abc",
        "https://hooks.slack.com/actions/../../admin",
        "https://hooks.slack.com/actions/T0/1/abc#frag",
        "https://hooks.slack.com/actions/T0 /1/abc",
        "https://hooks.slack.com\\@evil.example/",
        "https://hooks.slack.com/actions/\nHost: evil",
        "file:///etc/passwd",
        "",
        "https://[::1/",
    ],
)
def test_anything_else_is_refused_so_the_bot_is_no_ssrf_deputy(url: str) -> None:
    assert response_url_allowed(url, SLACK_RESPONSE_URL_BASE) is False


def test_a_loopback_base_serves_a_local_stand_in_only_on_its_port() -> None:
    base = "http://127.0.0.1:8123/actions/"
    assert response_url_allowed("http://127.0.0.1:8123/actions/T0/1/x", base)
    assert not response_url_allowed("http://127.0.0.1:8124/actions/T0/1/x", base)
    assert not response_url_allowed("http://127.0.0.1:8123/admin", base)
    assert not response_url_allowed("https://hooks.slack.com/actions/T0/1/x", base)


@pytest.mark.parametrize(
    ("base", "fine"),
    [
        ("https://hooks.slack.com/", True),
        ("https://hooks.slack-gov.com/", True),
        ("http://127.0.0.1:8123/actions/", True),
        ("http://localhost:8123/", True),
        ("http://hooks.slack.com/", False),
        ("https://hooks.slack.com", False),
        ("https://evil.example/", False),
        ("https://hooks.slack.com/?x=1", False),
        ("http://10.0.0.5/", False),
    ],
)
def test_the_response_url_base_setting_is_slack_or_loopback(base: str, fine: bool) -> None:
    assert (response_url_base_problem(base) is None) is fine
