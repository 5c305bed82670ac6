"""Hostile trust policies (deep, enormous, oddly typed): an answer every time, and a fix only ever narrows."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext, Verdict
from chalicelib.service.enforce import handle_event
from tests.reliability.conftest import Account
from tests.reliability.strategies import STATES, hostile_policies, nested
from tests.reliability.support import FUZZ_COUNTS, widening
from tests.world import ACCOUNT, load_event

MakeAccount = Callable[..., Account]
CONTEXT = RoleContext(account_id=ACCOUNT)
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
_names = itertools.count()
UNPARSEABLE = json.dumps({"Version": "2012-10-17", "Statement": [42, {"Effect": ["Allow"]}]})


@settings(max_examples=250, deadline=None, suppress_health_check=_QUIET)
@given(document=hostile_policies())
def test_evaluate_answers_every_hostile_document(document: Any) -> None:
    FUZZ_COUNTS["trust policies: engine.evaluate"] += 1
    # When any hostile document is evaluated, as a value and as the JSON text IAM would hold
    for candidate in (document, as_text(document)):
        evaluation = evaluate(candidate, CONTEXT)
        # Then a verdict comes back, a fix exactly for non_compliant, and the fix only narrows
        assert isinstance(evaluation.verdict, Verdict)
        assert (evaluation.fixed_policy is not None) == (evaluation.verdict is Verdict.NON_COMPLIANT)
        if evaluation.fixed_policy is not None:
            assert widening(evaluation.original, evaluation.fixed_policy) == []


def as_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    return account(mode="enforce", idempotent=False)


@settings(max_examples=60, deadline=None, suppress_health_check=_QUIET)
@given(document=hostile_policies())
def test_handle_event_survives_a_hostile_document_in_iam(acct: Account, document: Any) -> None:
    # Given a role whose stored trust document is hostile (moto stores what it is given, as IAM would
    # not: this is the worst case), and a CreateRole event pointing at it
    name = f"hostile-{next(_names)}"
    text = as_text(document)
    assume(text)  # IAM's API itself refuses an empty document
    try:
        acct.world.iam.create_role(RoleName=name, AssumeRolePolicyDocument=text)
    except RecursionError:
        # botocore's own policy decoder gives up on JSON nested this deep (IAM's grammar never stores
        # such a document); the engine-level test above covers these documents.
        assume(False)
    FUZZ_COUNTS["trust policies: service.handle_event (moto)"] += 1
    event = load_event("CreateRole-minimal-role-name-only.json")
    event["id"] = f"event-{name}"
    event["detail"]["requestParameters"]["roleName"] = name
    acct.logs.lines.clear()
    # When the event is handled
    out = handle_event(event, acct.deps)
    # Then there is a verdict and a logged decision; any write went through the guard (recorded first,
    # only narrowing: checked at teardown)
    assert out["status"] == "processed" and out["verdict"] in {v.value for v in Verdict}
    assert acct.logs.decisions(name)


def test_an_unparseable_document_is_sent_for_review_not_rewritten(acct: Account) -> None:
    # Given a role whose stored document is not a trust policy at all
    acct.world.iam.create_role(RoleName="garbled-sfn", AssumeRolePolicyDocument=UNPARSEABLE)
    event = load_event("CreateRole-minimal-role-name-only.json")
    event["detail"]["requestParameters"]["roleName"] = "garbled-sfn"
    # When its event is handled
    out = handle_event(event, acct.deps)
    # Then a human is asked to review; the bot writes nothing
    assert out["verdict"] == "needs_review" and out["action"] == "review"
    assert [p["code"] for p in out["problems"]] == ["unparseable"]
    assert acct.guard.writes == []


def test_a_value_nested_past_the_recursion_limit_is_an_answer_not_a_crash() -> None:
    # Given a trust policy value nested deeper than Python's recursion limit
    document = {"Version": "2012-10-17", "Statement": nested(5_000, {"Effect": "Allow", "Principal": STATES})}
    # When it is evaluated
    evaluation = evaluate(document, CONTEXT)
    # Then it is sent for review as unparseable
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert [p.code.value for p in evaluation.problems] == ["unparseable"]
