"""Settings: validated once, defaults per the contract, bad values name their variable."""

from __future__ import annotations

from datetime import date

import pytest

from chalicelib.domain.models import Mode, Require
from chalicelib.domain.settings import Exemption, SettingsError, load_settings, parse_exemptions


def test_defaults_follow_the_contract() -> None:
    settings = load_settings({})
    assert settings.mode is Mode.NOTIFY
    assert settings.require is Require.BOTH
    assert settings.max_fixes_per_run == 50
    assert settings.owner_tags == ("owner", "team", "contact")
    assert settings.notify_window_hours == 24
    assert settings.table == "deputy-guard"
    assert settings.exemptions == ()


def test_every_contract_variable_is_read() -> None:
    settings = load_settings(
        {
            "DEPUTY_GUARD_MODE": "ENFORCE",
            "DEPUTY_GUARD_REQUIRE": "either",
            "DEPUTY_GUARD_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:deputy-guard",
            "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER": "/deputy-guard/slack-webhook",
            "DEPUTY_GUARD_TABLE": "dg-audit",
            "DEPUTY_GUARD_OWNER_TAGS": "Owner, cost-center",
            "DEPUTY_GUARD_EXEMPTIONS": "legacy-*,/sandbox/",
            "DEPUTY_GUARD_MAX_FIXES_PER_RUN": "5",
        }
    )
    assert settings.mode is Mode.ENFORCE
    assert settings.require is Require.EITHER
    assert settings.sns_topic_arn == "arn:aws:sns:us-east-1:111122223333:deputy-guard"
    assert settings.slack_webhook_parameter == "/deputy-guard/slack-webhook"
    assert settings.table == "dg-audit"
    assert settings.owner_tags == ("Owner", "cost-center")
    assert settings.exemptions == (Exemption(name_glob="legacy-*"), Exemption(path_prefix="/sandbox/"))
    assert settings.max_fixes_per_run == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEPUTY_GUARD_MODE", "yolo"),
        ("DEPUTY_GUARD_REQUIRE", "one"),
        ("DEPUTY_GUARD_MAX_FIXES_PER_RUN", "many"),
        ("DEPUTY_GUARD_MAX_FIXES_PER_RUN", "-1"),
        ("DEPUTY_GUARD_SNS_TOPIC_ARN", "deputy-guard-topic"),
        ("DEPUTY_GUARD_SLACK_WEBHOOK_URL", "hooks.example.com/x"),
        ("DEPUTY_GUARD_TABLE", "no spaces allowed"),
        ("DEPUTY_GUARD_OWNER_TAGS", " , "),
        ("DEPUTY_GUARD_EXEMPTIONS", "[{"),
        ("DEPUTY_GUARD_EXEMPTIONS", '[{"name": "x", "expires": "someday"}]'),
        ("DEPUTY_GUARD_EXEMPTIONS", '[{"nmae": "x"}]'),
        ("DEPUTY_GUARD_EXEMPTIONS", '[{"path": "sandbox"}]'),
        ("DEPUTY_GUARD_SIZE_QUOTA", "12"),
        ("DEPUTY_GUARD_SOURCE_ARN", "arn:aws:states:*:111122223333:*"),
        ("DEPUTY_GUARD_FIX_CLOUDFORMATION", "perhaps"),
        ("DEPUTY_GUARD_SCAN_BUDGET_SECONDS", "0"),
        ("DEPUTY_GUARD_SELF_ROLE_ARN", "deputy-guard"),
        ("DEPUTY_GUARD_SOURCE_ARN", "arn:aws:states:*:{account}:*"),
        ("DEPUTY_GUARD_SOURCE_ARN", "arn:{partition}:states:*:{account}:"),
        ("DEPUTY_GUARD_SOURCE_ARN", ","),
        ("DEPUTY_GUARD_SCAN_BUDGET_SECONDS", "29"),
        ("LOG_LEVEL", "verbose"),
        ("DEPUTY_GUARD_SELF_ROLE_ARN", "arn:aws:iam::111122223333:role/a,deputy-guard"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_webhook_url_stays_out_of_the_settings_repr() -> None:
    settings = load_settings({"DEPUTY_GUARD_SLACK_WEBHOOK_URL": "https://hooks.example.test/services/T/B/SECRETTOKEN"})
    assert "SECRETTOKEN" not in repr(settings)


def test_json_exemptions_with_expiry_and_reason() -> None:
    exemptions = parse_exemptions(
        '[{"name": "legacy-*", "expires": "2027-01-31", "reason": "migration ticket OPS-12"}, {"path": "/sandbox/"}]'
    )
    legacy, sandbox = exemptions
    assert legacy.matches("legacy-etl", "/", date(2027, 1, 31))
    assert not legacy.matches("legacy-etl", "/", date(2027, 2, 1))
    assert not legacy.matches("modern-etl", "/", date(2027, 1, 1))
    assert sandbox.matches("anything", "/sandbox/team-a/", date(2030, 1, 1))
    assert not sandbox.matches("anything", "/prod/", date(2030, 1, 1))
    assert "OPS-12" in legacy.describe()


def test_self_role_arns_accept_one_role_per_function() -> None:
    settings = load_settings(
        {
            "DEPUTY_GUARD_SELF_ROLE_ARN": "arn:aws:iam::111122223333:role/deputy-guard-prod-OnIamEventRole-1A, "
            "arn:aws:iam::111122223333:role/deputy-guard-prod-SweepRole-2B"
        }
    )
    assert settings.self_role_arns == (
        "arn:aws:iam::111122223333:role/deputy-guard-prod-OnIamEventRole-1A",
        "arn:aws:iam::111122223333:role/deputy-guard-prod-SweepRole-2B",
    )


def test_a_narrower_source_arn_template_is_accepted() -> None:
    settings = load_settings({"DEPUTY_GUARD_SOURCE_ARN": "arn:{partition}:states:us-east-1:{account}:stateMachine:*"})
    assert settings.source_arns == ("arn:{partition}:states:us-east-1:{account}:stateMachine:*",)
