"""The approval settings: validated at load, failing fast with the variable's name."""

from __future__ import annotations

import pytest

from chalicelib.domain.settings import SettingsError, load_settings

BASE = {
    "DEPUTY_GUARD_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "DEPUTY_GUARD_SLACK_SIGNING_SECRET": "local-secret",
}


def test_defaults_send_no_buttons() -> None:
    settings = load_settings({})
    assert settings.slack_approvers == frozenset()
    assert settings.slack_approvals_enabled is False
    assert settings.slack_token_ttl_days == 7
    assert settings.slack_response_url_base == "https://hooks.slack.com/"


def test_approvers_signing_secret_and_ttl_are_read() -> None:
    settings = load_settings(
        {**BASE, "DEPUTY_GUARD_SLACK_APPROVERS": "U012AB3CD, W0ENTERPRISE1,", "DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS": "3"}
    )
    assert settings.slack_approvers == frozenset({"U012AB3CD", "W0ENTERPRISE1"})
    assert settings.slack_approvals_enabled is True
    assert settings.slack_token_ttl_days == 3


def test_the_signing_secret_never_shows_in_the_settings_repr() -> None:
    settings = load_settings({**BASE, "DEPUTY_GUARD_SLACK_SIGNING_SECRET": "XXdoNotPrintXX"})
    assert "XXdoNotPrintXX" not in repr(settings)


def test_a_parameter_is_enough_for_approvers() -> None:
    settings = load_settings(
        {
            "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER": "/deputy-guard/prod/slack-webhook",
            "DEPUTY_GUARD_SLACK_APPROVERS": "U012AB3CD",
            "DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER": "/deputy-guard/prod/slack-signing-secret",
        }
    )
    assert settings.slack_signing_secret_parameter == "/deputy-guard/prod/slack-signing-secret"
    assert settings.slack_signing_secret is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEPUTY_GUARD_SLACK_APPROVERS": "U012AB3CD"}, "DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER"),
        ({**BASE, "DEPUTY_GUARD_SLACK_APPROVERS": "alice"}, "DEPUTY_GUARD_SLACK_APPROVERS"),
        ({**BASE, "DEPUTY_GUARD_SLACK_APPROVERS": "U012,<@U1>"}, "DEPUTY_GUARD_SLACK_APPROVERS"),
        ({"DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS": "0"}, "DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS"),
        ({"DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS": "91"}, "DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS"),
        ({"DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS": "week"}, "DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS"),
        ({"DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": "https://evil.example/"}, "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE"),
        ({"DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": "http://hooks.slack.com/"}, "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


def test_a_loopback_response_base_serves_the_local_stand_in() -> None:
    base = "http://127.0.0.1:8123/actions/"
    assert load_settings({"DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE": base}).slack_response_url_base == base
