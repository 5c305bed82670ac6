"""Wiring: real dependencies built from settings, with the webhook read from SSM and cached."""

from __future__ import annotations

from collections.abc import Callable

import boto3

from chalicelib.adapters import aws
from chalicelib.domain.settings import load_settings
from chalicelib.runtime.wiring import _webhook_provider
from tests.world import World

MakeWorld = Callable[..., World]


def test_webhook_parameter_is_read_once_and_cached(make_world: MakeWorld) -> None:
    make_world()
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(
        Name="/deputy-guard/test/slack", Value="https://hooks.example.test/services/T/B/X", Type="SecureString"
    )
    calls: list[str] = []
    aws.make_client("ssm").meta.events.register("before-call.ssm.*", lambda model, **_: calls.append(model.name))
    provider = _webhook_provider(load_settings({"DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER": "/deputy-guard/test/slack"}))
    assert provider() == provider() == "https://hooks.example.test/services/T/B/X"
    assert calls == ["GetParameter"]


def test_webhook_from_secrets_manager(make_world: MakeWorld) -> None:
    make_world()
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="slack-webhook", SecretString="https://hooks.example.test/services/T/B/Y")["ARN"]
    provider = _webhook_provider(load_settings({"DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER": arn}))
    assert provider() == "https://hooks.example.test/services/T/B/Y"


def test_missing_parameter_error_does_not_quote_any_value(make_world: MakeWorld) -> None:
    make_world()
    provider = _webhook_provider(load_settings({"DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER": "/deputy-guard/missing"}))
    try:
        provider()
    except aws.AwsError as exc:
        assert "/deputy-guard/missing" in str(exc)
    else:
        raise AssertionError("a missing parameter must raise")
