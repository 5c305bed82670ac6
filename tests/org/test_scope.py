"""DEPUTY_GUARD_ACCOUNTS, DEPUTY_GUARD_MEMBER_ROLE, DEPUTY_GUARD_WORK_QUEUE_URL: parsed, validated, named on error."""

from __future__ import annotations

import pytest

from chalicelib.domain.scope import AccountScope, ScopeError, ScopeKind, member_role_arn, parse_member_role, parse_scope
from chalicelib.domain.settings import SettingsError, load_settings
from chalicelib.service.fanout import WorkItem, parse_work_item

QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/deputy-guard-work"


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_unset_means_the_bots_own_account_only(raw: str | None) -> None:
    assert parse_scope(raw) == AccountScope(ScopeKind.SELF)
    assert not parse_scope(raw).multi_account


@pytest.mark.parametrize("raw", ["org", "ORG", " org "])
def test_org_means_the_organization(raw: str) -> None:
    assert parse_scope(raw).kind is ScopeKind.ORG


def test_a_list_keeps_its_order_without_duplicates() -> None:
    scope = parse_scope(" 111122223333,444455556666 ,111122223333")
    assert scope == AccountScope(ScopeKind.LIST, ("111122223333", "444455556666"))


@pytest.mark.parametrize("raw", ["12345", "111122223333,", "111122223333;444455556666", "all", "1111222233334"])
def test_anything_else_is_refused(raw: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(raw)


def test_member_role_defaults_and_is_validated() -> None:
    assert parse_member_role(None) == "deputy-guard-member"
    assert parse_member_role("org-guard") == "org-guard"
    with pytest.raises(ScopeError):
        parse_member_role("no spaces")
    assert member_role_arn("aws-us-gov", "111122223333", "x") == "arn:aws-us-gov:iam::111122223333:role/x"


def test_settings_unset_are_exactly_todays_single_account() -> None:
    settings = load_settings({})
    assert settings.accounts == AccountScope() and settings.work_queue_url is None
    assert settings.member_role == "deputy-guard-member"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEPUTY_GUARD_ACCOUNTS": "12345"}, "DEPUTY_GUARD_ACCOUNTS"),
        ({"DEPUTY_GUARD_ACCOUNTS": "org"}, "DEPUTY_GUARD_WORK_QUEUE_URL"),  # a multi-account sweep needs its queue
        ({"DEPUTY_GUARD_MEMBER_ROLE": "a/b"}, "DEPUTY_GUARD_MEMBER_ROLE"),
        ({"DEPUTY_GUARD_WORK_QUEUE_URL": "deputy-guard-work"}, "DEPUTY_GUARD_WORK_QUEUE_URL"),
    ],
)
def test_a_bad_value_fails_fast_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


def test_org_settings() -> None:
    settings = load_settings({"DEPUTY_GUARD_ACCOUNTS": "org", "DEPUTY_GUARD_WORK_QUEUE_URL": QUEUE})
    assert settings.accounts.kind is ScopeKind.ORG and settings.work_queue_url == QUEUE


@pytest.mark.parametrize(
    ("body", "item"),
    [
        ('{"account": "111122223333"}', WorkItem("111122223333")),
        ('{"account": "111122223333", "continuation": 3}', WorkItem("111122223333", 3)),
        ('{"account": "1111"}', None),
        ('{"account": "111122223333", "extra": 1}', None),
        ('{"account": "111122223333", "continuation": -1}', None),
        ('{"account": "111122223333", "continuation": true}', None),
        ("[]", None),
        ("not json", None),
    ],
)
def test_work_messages(body: str, item: WorkItem | None) -> None:
    assert parse_work_item(body) == item
    if item is not None:
        assert parse_work_item(item.to_body()) == item
