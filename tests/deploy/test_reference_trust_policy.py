"""policies/step-functions-trust-policy.json: the reference trust policy deputy-guard itself rates compliant."""

from __future__ import annotations

import json
import re

import pytest

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import EngineOptions, Require, RoleContext, Verdict
from tests.deploy.support import PROJECT, load_json

REFERENCE = PROJECT / "policies" / "step-functions-trust-policy.json"
PLACEHOLDERS = {"ACCOUNT_ID", "PARTITION", "REGION", "STATE_MACHINE_NAME"}


def filled(account: str = "111122223333", region: str = "eu-west-1", machine: str = "orders-pipeline") -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    for placeholder, value in (
        ("STATE_MACHINE_NAME", machine),
        ("ACCOUNT_ID", account),
        ("PARTITION", "aws"),
        ("REGION", region),
    ):
        text = text.replace(placeholder, value)
    return text


def test_the_placeholders_are_exactly_the_documented_ones() -> None:
    found = set(re.findall(r"\b[A-Z][A-Z_]{3,}\b", REFERENCE.read_text(encoding="utf-8")))
    assert found == PLACEHOLDERS
    readme = (PROJECT / "policies" / "README.md").read_text(encoding="utf-8")
    assert all(f"`{p}`" in readme for p in PLACEHOLDERS)


@pytest.mark.parametrize("require", list(Require))
@pytest.mark.parametrize(
    ("region", "machine"), [("eu-west-1", "orders-pipeline"), ("*", "*"), ("us-east-1", "orders-*")]
)
def test_the_filled_in_reference_is_compliant(require: Require, region: str, machine: str) -> None:
    context = RoleContext(account_id="111122223333", role_name="orders-pipeline-role")
    result = evaluate(filled(region=region, machine=machine), context, EngineOptions(require=require))
    assert result.verdict is Verdict.COMPLIANT, result.problems


def test_another_accounts_copy_is_not_compliant_here() -> None:
    # The same document filled in for account A, used on a role of account B, pins the wrong account
    result = evaluate(filled(account="444455556666"), RoleContext(account_id="111122223333"))
    assert result.verdict is Verdict.NEEDS_REVIEW


def test_it_trusts_step_functions_only_with_both_keys() -> None:
    statement = load_json(REFERENCE)["Statement"]
    assert len(statement) == 1
    assert statement[0]["Principal"] == {"Service": "states.amazonaws.com"}
    assert statement[0]["Action"] == "sts:AssumeRole"
    assert set(json.dumps(statement[0]["Condition"]).split('"')) >= {"aws:SourceAccount", "aws:SourceArn"}
