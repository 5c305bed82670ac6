"""The bot may import and resolve its own findings in Security Hub, and nothing else there."""

from __future__ import annotations

import pytest

from tests.deploy.support import POLICY_FILE, PolicyEvaluator, load_json

ACCOUNT = "123456789012"
OWN_PRODUCT = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
HUB = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:hub/default"


@pytest.fixture(scope="module")
def policy() -> PolicyEvaluator:
    return PolicyEvaluator(load_json(POLICY_FILE))


def test_findings_are_imported_only_as_the_accounts_own_default_product(policy: PolicyEvaluator) -> None:
    assert policy.allowed("securityhub:BatchImportFindings", OWN_PRODUCT)
    # another vendor's product (a partner integration, AWS's own) is not the bot's to write
    assert not policy.allowed("securityhub:BatchImportFindings", "arn:aws:securityhub:us-east-1::product/aws/guardduty")
    assert not policy.allowed(
        "securityhub:BatchImportFindings", "arn:aws:securityhub:us-east-1::product/cloud-custodian/cloud-custodian"
    )


def test_only_the_calls_a_resolution_needs_are_granted_on_the_hub(policy: PolicyEvaluator) -> None:
    assert policy.allowed("securityhub:GetFindings", HUB)
    assert policy.allowed("securityhub:BatchUpdateFindings", HUB)
    for action in ("securityhub:DisableSecurityHub", "securityhub:UpdateFindings", "securityhub:DeleteInsight"):
        assert not policy.allowed(action, HUB), action
