"""The invariant checks themselves: ``widening`` and the write guard must catch what they claim to catch.

Every other test in this suite relies on them, so they are tested first against known widenings and
against the engine's own fixes (fixtures and the engine's Hypothesis strategies).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import EngineOptions, RoleContext
from tests.reliability.conftest import Account
from tests.reliability.support import FUZZ_COUNTS, widening
from tests.unit.fixture_policies import all_cases
from tests.unit.test_engine_properties import contexts, engine_options, policies
from tests.world import ACCOUNT, VULNERABLE

MIXED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        },
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
    ],
}


def edited(document: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    change(copied)
    return copied


FIXABLE = [case for case in all_cases() if case.fixed_policy is not None]


@pytest.mark.parametrize("case", FIXABLE, ids=[case.name for case in FIXABLE])
def test_every_fixture_fix_only_narrows(case: Any) -> None:
    # Given a real-shaped policy the engine fixes
    evaluation = evaluate(case.policy, case.context, case.options)
    assert evaluation.original is not None and evaluation.fixed_policy is not None
    # Then the independent checker finds no way in which the fix widens access
    assert widening(evaluation.original, evaluation.fixed_policy) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, ctx=contexts, options=engine_options)
def test_engine_fixes_only_narrow_by_the_guards_definition(
    policy: dict[str, Any], ctx: RoleContext, options: EngineOptions
) -> None:
    FUZZ_COUNTS["engine fixes checked by the write guard's narrowing rule"] += 1
    # Given a generated policy (the engine property tests' own strategies)
    fixed = plan_fix(policy, ctx, options)
    # Then, whenever there is a fix, the guard's independent rule agrees it only narrows
    if fixed is not None:
        assert widening(evaluate(policy, ctx, options).original, fixed) == []


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("a principal added", lambda d: d["Statement"][0]["Principal"]["Service"].append("ec2.amazonaws.com")),
        ("a principal made public", lambda d: d["Statement"][0].update(Principal="*")),
        ("a condition dropped", lambda d: d["Statement"][0].pop("Condition")),
        (
            "a condition value added",
            lambda d: d["Statement"][0]["Condition"]["Bool"].update({"aws:SecureTransport": ["true", "false"]}),
        ),
        ("the action widened", lambda d: d["Statement"][0].update(Action="sts:*")),
        ("a Deny removed", lambda d: d["Statement"].pop(1)),
        ("a Deny narrowed", lambda d: d["Statement"][1].update(Condition={"Bool": {"aws:SecureTransport": "true"}})),
        (
            "a new Allow statement",
            lambda d: d["Statement"].append(
                {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
            ),
        ),
        ("the version changed", lambda d: d.update(Version="2008-10-17")),
    ],
)
def test_widening_is_flagged(what: str, change: Callable[[dict[str, Any]], None]) -> None:
    # Given a document and a change that grants more
    wider = edited(MIXED, change)
    # Then the checker names at least one problem
    assert widening(MIXED, wider), what


def test_the_guard_flags_a_write_that_was_not_recorded_first(account: Callable[..., Account]) -> None:
    # Given a watched account with a vulnerable role
    acct = account(mode="enforce")
    acct.create_role("sfn-unrecorded", VULNERABLE)
    fixed = plan_fix(VULNERABLE, RoleContext(account_id=ACCOUNT))
    assert fixed is not None
    # When the bot's IAM gateway writes without an audit record (bypassing the service)
    acct.deps.iam.update_assume_role_policy("sfn-unrecorded", fixed)
    # Then the guard saw the write and reports the missing write-ahead record
    (write,) = acct.guard.writes
    assert write.kind is None
    assert write.violations == ["no pending audit record holds this document: the write was not recorded first"]
    acct.guard.writes.clear()  # the violation was the point of this test


def test_the_guard_flags_a_widening_write(account: Callable[..., Account]) -> None:
    # Given a watched account with a protected role
    acct = account(mode="enforce")
    fixed = plan_fix(VULNERABLE, RoleContext(account_id=ACCOUNT))
    assert fixed is not None
    acct.create_role("sfn-widened", fixed)
    # When the gateway writes the vulnerable document back without a revert record
    acct.deps.iam.update_assume_role_policy("sfn-widened", VULNERABLE)
    # Then the guard reports both the missing record and the widening
    (write,) = acct.guard.writes
    assert any("not a narrowing" in v for v in write.violations)
    acct.guard.writes.clear()
