"""Where the webhook URL comes from: SSM SecureString or Secrets Manager via Powertools Parameters, or a setting."""

import json
import traceback

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from moto import mock_aws

from chalicelib.adapters.slack import make_webhook_url_provider

REGION = "us-east-1"


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        # Providers built inside mock_aws so their clients are mocked; each has its own cache.
        yield ssm, secrets, SSMProvider(boto3_client=ssm), SecretsProvider(boto3_client=secrets)


def test_ssm_securestring_is_read_decrypted_and_cached(aws, webhook_path):
    # Given the URL in an SSM SecureString
    ssm, _, ssm_provider, secrets_provider = aws
    url = f"https://hooks.example.com{webhook_path}"
    ssm.put_parameter(Name="/deputy-guard/slack-webhook", Value=url, Type="SecureString")
    provider = make_webhook_url_provider(
        parameter="/deputy-guard/slack-webhook",
        url=None,
        get_parameter=ssm_provider.get,
        get_secret=secrets_provider.get,
        max_age=300,
    )
    # When it is read, and read again after the parameter is gone
    first = provider()
    ssm.delete_parameter(Name="/deputy-guard/slack-webhook")
    second = provider()
    # Then the decrypted URL comes back both times: the second from the cache, with no SSM call
    assert first == second == url


def test_secrets_manager_arn_is_read_as_a_secret_holding_json(aws, webhook_path):
    _, secrets, ssm_provider, secrets_provider = aws
    url = f"https://hooks.example.com{webhook_path}"
    arn = secrets.create_secret(Name="deputy-guard/slack", SecretString=json.dumps({"url": url}))["ARN"]
    provider = make_webhook_url_provider(
        parameter=arn, url=None, get_parameter=ssm_provider.get, get_secret=secrets_provider.get
    )
    assert provider() == url


def test_parameter_wins_over_the_plain_setting_and_the_setting_serves_local_runs():
    calls = []

    def get_parameter(name, **kwargs):
        calls.append((name, kwargs))
        return "https://hooks.example.com/from-ssm"

    from_parameter = make_webhook_url_provider(
        parameter="/p", url="http://127.0.0.1:1/local", get_parameter=get_parameter, get_secret=get_parameter
    )
    from_setting = make_webhook_url_provider(
        parameter=None, url="http://127.0.0.1:1/local", get_parameter=get_parameter, get_secret=get_parameter
    )
    assert from_parameter() == "https://hooks.example.com/from-ssm"
    assert calls == [("/p", {"max_age": 300, "decrypt": True})]
    assert from_setting() == "http://127.0.0.1:1/local"


def test_neither_setting_means_slack_is_off():
    assert make_webhook_url_provider(parameter=None, url=None, get_parameter=print, get_secret=print) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "webhook parameter holds no URL"),
        ("{not json https://hooks.example.com/T/B/secret", "webhook secret looks like JSON but does not parse"),
        (json.dumps({"channel": "#x"}), "webhook parameter holds no URL"),
    ],
)
def test_a_value_without_a_url_fails_without_echoing_it(value, message):
    provider = make_webhook_url_provider(
        parameter="/p", url=None, get_parameter=lambda *a, **k: value, get_secret=lambda *a, **k: value
    )
    with pytest.raises(ValueError) as raised:
        provider()
    assert str(raised.value) == message
    assert "hooks.example.com" not in "".join(traceback.format_exception(raised.value))
