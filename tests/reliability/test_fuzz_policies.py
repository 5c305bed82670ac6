"""Hostile trust policies (deep, enormous, oddly typed): an answer every time, and a fix only ever narrows."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import EngineOptions, RoleContext, Verdict
from chalicelib.domain.policy import to_compact_json
from chalicelib.service.enforce import handle_event
from tests.reliability.conftest import Account
from tests.reliability.strategies import STATES, hostile_policies, nested
from tests.reliability.support import FUZZ_COUNTS, widening
from tests.work import counted
from tests.world import ACCOUNT, load_event

MakeAccount = Callable[..., Account]
CONTEXT = RoleContext(account_id=ACCOUNT)
ROOMY = EngineOptions(size_quota=10_240)  # the largest quota IAM grants, so that hostile documents get fixes
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


# --- hostile JSON text: wildcards, literals, repeated keys, lone surrogates ----------------------------


@dataclass(frozen=True)
class HostileText:
    text: str
    repeated_key: bool
    lone_surrogate: bool
    literals: str  # the compact JSON of a number list that must survive any fix, as written


wild = st.builds(
    lambda unit, count, tail: unit * count + tail,
    st.sampled_from(["*", "?", "*?", "*a", "**"]),
    st.integers(min_value=0, max_value=80),
    st.sampled_from(["", "x", "Role", "AssumeRole", "states"]),
)
literal_lists = st.lists(st.sampled_from(["1.10", "1e3", "-0", "0.50", "9" * 30, "2"]), min_size=1, max_size=3)


@st.composite
def hostile_texts(draw: st.DrawFn) -> HostileText:
    """A trust policy as JSON text, with hostile wildcards and, sometimes, a repeated key or a lone surrogate."""
    action = draw(st.sampled_from(["sts:", "sts:", "STS:", "sts:*", "", "*"])) + draw(wild)
    source_arn = "arn:aws:" + draw(wild) + ":" + draw(wild) + f":{ACCOUNT}:" + draw(wild)
    operator = draw(st.sampled_from(["ArnLike", "ArnEquals", "StringLike", "StringEquals", "ForAnyValue:ArnLike"]))
    services = st.sampled_from(["states.amazonaws.com", ["lambda.amazonaws.com", "states.amazonaws.com"]])
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": draw(services)},
        "Action": draw(st.sampled_from([action, [action, "sts:AssumeRole"], [action] * 5])),
        "Condition": {operator: {"aws:SourceArn": draw(st.sampled_from([source_arn, [source_arn] * 3]))}},
    }
    literals = "[" + ",".join(draw(literal_lists)) + "]"
    deny = {"Effect": "Deny", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole"}
    deny["Condition"] = {"NumericEquals": {"aws:MultiFactorAuthAge": "__LITERALS__"}}
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement, deny]}).replace('"__LITERALS__"', literals)
    repeated = draw(st.integers(min_value=0, max_value=2)) == 0
    if repeated:
        key = draw(st.sampled_from(['"Effect": ', '"Action": ', '"Version": ', '"aws:SourceArn": ']))
        text = text.replace(key, key + '"x", ' + key, 1)
    surrogate = draw(st.integers(min_value=0, max_value=4)) == 0
    if surrogate:
        text = text.replace('"Deny"', '"Deny", "Sid": "\\udc00"', 1)
    return HostileText(text, repeated, surrogate, literals)


@settings(max_examples=300, deadline=None, suppress_health_check=_QUIET)
@given(case=hostile_texts())
def test_hostile_text_is_answered_in_linear_work_and_never_rewritten_when_ambiguous(case: HostileText) -> None:
    FUZZ_COUNTS["trust policies: hostile JSON text"] += 1
    # When hostile text is evaluated
    evaluation, work = counted(lambda: evaluate(case.text, CONTEXT, ROOMY))
    # Then the answer comes at once: work linear in the text (function calls counted, never time)
    assert work <= 3 * len(case.text) + 1_000, (work, case.text[:200])
    assert (evaluation.fixed_policy is not None) == (evaluation.verdict is Verdict.NON_COMPLIANT)
    # and a repeated key or a lone surrogate is never judged nor rewritten
    if case.repeated_key:
        assert [p.code.value for p in evaluation.problems] == ["duplicate_keys"]
    elif case.lone_surrogate:
        assert evaluation.verdict is Verdict.NEEDS_REVIEW
        assert "invalid_document" in [p.code.value for p in evaluation.problems]
    # and any fix keeps the other statement's numbers as written, and only narrows
    if evaluation.fixed_policy is not None:
        assert f'"aws:MultiFactorAuthAge":{case.literals}' in to_compact_json(evaluation.fixed_policy)
        assert widening(evaluation.original, evaluation.fixed_policy) == []
