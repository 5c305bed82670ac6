"""Deploy-time settings: stack parameters wired into every function, so a setting changes with a stack update.

Switching notify -> enforce, the exemptions or the cap is `aws cloudformation deploy --parameter-overrides`
on the same package: no `.chalice/config.json` edit and no rebuild.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.domain.catalogue import CATALOGUE, DEFAULT_SERVICES
from chalicelib.domain.models import Mode
from chalicelib.domain.settings import DEFAULT_OWNER_TAGS, load_settings
from tests.deploy.stack import FUNCTIONS, STACK, Stack, physical
from tests.deploy.support import Packaged
from tests.deploy.test_stage_config import known_variables

pytestmark = pytest.mark.slow

# Parameter -> the environment variable it sets in every function.
PARAMETER_VARIABLES = {
    "Mode": "DEPUTY_GUARD_MODE",
    "Services": "DEPUTY_GUARD_SERVICES",
    "Exemptions": "DEPUTY_GUARD_EXEMPTIONS",
    "MaxFixesPerRun": "DEPUTY_GUARD_MAX_FIXES_PER_RUN",
    "OwnerTags": "DEPUTY_GUARD_OWNER_TAGS",
    "Accounts": "DEPUTY_GUARD_ACCOUNTS",
    "MemberRole": "DEPUTY_GUARD_MEMBER_ROLE",
    "SlackApprovers": "DEPUTY_GUARD_SLACK_APPROVERS",
    "SlackSigningSecretParameter": "DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER",
    "SlackWebhookParameter": "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER",
}
# Contract settings whose code is being written: wired now, read once it lands.
PENDING_CONTRACT_VARIABLES = {"DEPUTY_GUARD_ACCOUNTS", "DEPUTY_GUARD_MEMBER_ROLE", "DEPUTY_GUARD_SLACK_APPROVERS"}
# Empty means "unset": the variable is left out, so the code's own default applies.
OPTIONAL = ("Exemptions", "OwnerTags", "Accounts", "MemberRole", "SlackApprovers", "SlackSigningSecretParameter")


def _variables(packaged: Packaged, function: str) -> dict[str, Any]:
    return dict(packaged.template["Resources"][function]["Properties"]["Environment"]["Variables"])


def test_every_function_gets_the_same_environment(packaged: Packaged) -> None:
    first, *others = (_variables(packaged, f) for f in FUNCTIONS)
    assert all(other == first for other in others)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("parameter", "variable"), sorted(PARAMETER_VARIABLES.items()))
def test_each_parameter_reaches_each_function(packaged: Packaged, function: str, parameter: str, variable: str) -> None:
    value = _variables(packaged, function)[variable]
    if parameter in OPTIONAL:
        assert value == {"Fn::If": [f"Has{parameter}", {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}
        assert packaged.template["Conditions"][f"Has{parameter}"] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]
        }
    else:
        assert value == {"Ref": parameter}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_defaults_are_valid_settings(packaged: Packaged, function: str) -> None:
    # Given the parameters' defaults / When the bot loads the environment CloudFormation gives it / Then no error
    environment = Stack(packaged).environment(function)
    for parameter in OPTIONAL:
        if parameter != "OwnerTags":
            assert PARAMETER_VARIABLES[parameter] not in environment, parameter
    settings = load_settings(environment)
    assert settings.mode is Mode.NOTIFY
    assert settings.services == DEFAULT_SERVICES
    assert settings.table == physical("Table")
    assert settings.table.startswith(STACK)
    assert settings.owner_tags == DEFAULT_OWNER_TAGS
    assert settings.exemptions == ()
    assert settings.max_fixes_per_run == 50
    assert settings.slack_webhook_parameter == "/deputy-guard/prod/slack-webhook"
    assert len(settings.self_role_arns) == 4


@pytest.mark.parametrize("function", FUNCTIONS)
def test_notify_to_enforce_and_the_other_settings_are_a_stack_update(packaged: Packaged, function: str) -> None:
    # Given the same template (the same package) / When the parameters change / Then the bot's settings follow
    stack = Stack(
        packaged,
        Mode="enforce",
        Services="states,scheduler.amazonaws.com,vpc-flow-logs",
        Exemptions='[{"name": "legacy-etl-*", "expires": "2030-12-31", "reason": "SEC-123"}, {"path": "/vendor/"}]',
        MaxFixesPerRun="5",
        OwnerTags="team,owner",
        Accounts="org",
        MemberRole="deputy-guard-member",
        SlackApprovers="U012AB3CD,W0456EF7G",
        SlackSigningSecretParameter="/deputy-guard/prod/slack-signing-secret",
        SlackWebhookParameter="",
    )
    environment = stack.environment(function)
    settings = load_settings(environment)
    assert settings.mode is Mode.ENFORCE
    assert [entry.name for entry in settings.services] == ["states", "scheduler", "vpc-flow-logs"]
    assert settings.max_fixes_per_run == 5
    assert settings.owner_tags == ("team", "owner")
    assert [e.name_glob or e.path_prefix for e in settings.exemptions] == ["legacy-etl-*", "/vendor/"]
    assert not settings.slack_enabled
    assert environment["DEPUTY_GUARD_ACCOUNTS"] == "org"
    assert environment["DEPUTY_GUARD_MEMBER_ROLE"] == "deputy-guard-member"
    assert environment["DEPUTY_GUARD_SLACK_APPROVERS"] == "U012AB3CD,W0456EF7G"
    assert settings.slack_approvers == {"U012AB3CD", "W0456EF7G"}
    assert settings.slack_signing_secret_parameter == "/deputy-guard/prod/slack-signing-secret"


def test_the_mode_parameter_offers_exactly_the_modes(packaged: Packaged) -> None:
    mode = packaged.template["Parameters"]["Mode"]
    assert sorted(mode["AllowedValues"]) == sorted(m.value for m in Mode)
    assert mode["Default"] == "notify"


def test_every_default_is_a_value_cloudformation_accepts(packaged: Packaged) -> None:
    for name, parameter in packaged.template["Parameters"].items():
        if "Default" not in parameter:
            continue
        default = parameter["Default"]
        if "AllowedPattern" in parameter:
            assert re.fullmatch(parameter["AllowedPattern"], str(default)), name
        if "AllowedValues" in parameter:
            assert default in parameter["AllowedValues"], name
        if parameter["Type"] == "Number":
            assert parameter.get("MinValue", default) <= default <= parameter.get("MaxValue", default), name


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("Services", "states", True),
        ("Services", "all", True),
        ("Services", "states,scheduler.amazonaws.com,ssm-incidents", True),
        ("Services", "", False),
        ("Services", "states, scheduler", False),
        ("Services", "states;rm", False),
        ("MaxFixesPerRun", "0", True),
        ("MaxFixesPerRun", "-1", False),
        ("MaxFixesPerRun", "ten", False),
        ("Accounts", "", True),
        ("Accounts", "org", True),
        ("Accounts", "111122223333,444455556666", True),
        ("Accounts", "1111", False),
        ("Accounts", "all", False),
        ("MemberRole", "deputy-guard-member", True),
        ("MemberRole", "role/x", False),
        ("SlackApprovers", "U012AB3CD", True),
        ("SlackApprovers", "<!channel>", False),
        ("TableName", "", True),
        ("TableName", "deputy-guard-prod", True),
        ("TableName", "audit", False),  # the bot's policy reaches only deputy-guard* tables
    ],
)
def test_parameters_refuse_what_the_bot_would_refuse(
    packaged: Packaged, parameter: str, value: str, accepted: bool
) -> None:
    pattern = packaged.template["Parameters"][parameter]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


def test_the_services_parameter_accepts_every_catalogue_name(packaged: Packaged) -> None:
    pattern = packaged.template["Parameters"]["Services"]["AllowedPattern"]
    for entry in CATALOGUE:
        assert re.fullmatch(pattern, entry.name) and re.fullmatch(pattern, entry.principal), entry.name
    assert re.fullmatch(pattern, ",".join(entry.name for entry in CATALOGUE))


def test_every_variable_the_template_sets_is_one_the_bot_reads(packaged: Packaged) -> None:
    for function in FUNCTIONS:
        unknown = set(_variables(packaged, function)) - known_variables() - PENDING_CONTRACT_VARIABLES
        assert not unknown, f"{function}: the bot does not read {sorted(unknown)}"
