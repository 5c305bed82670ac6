"""Table tests: every real-shaped fixture under tests/fixtures/trust-policies, evaluated and fixed."""

from __future__ import annotations

import copy

import pytest

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import Verdict
from chalicelib.domain.policy import to_compact_json

from .fixture_policies import FIXTURE_DIR, PolicyCase, all_cases

CASES = all_cases()


def _ids(case: PolicyCase) -> str:
    return case.name


def test_the_fixture_set_is_large_and_covers_every_verdict() -> None:
    # Given the fixture folder
    # When the cases are loaded
    verdicts = {case.verdict for case in CASES}
    # Then there are enough of them, and each verdict appears
    assert len(CASES) >= 45, FIXTURE_DIR
    assert verdicts == {v.value for v in Verdict}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_verdict_problems_and_fix_match_the_fixture(case: PolicyCase) -> None:
    # Given a real-shaped trust policy and its role context
    # When it is evaluated
    evaluation = evaluate(case.policy, case.context, case.options)
    # Then the verdict, the problem codes and the fixed document are exactly the expected ones
    assert evaluation.verdict.value == case.verdict, case.description
    assert sorted(p.code.value for p in evaluation.problems) == case.problem_codes, case.description
    assert evaluation.fixed_policy == case.fixed_policy, case.description
    if case.fixed_policy_compact is not None:
        assert to_compact_json(evaluation.fixed_policy) == case.fixed_policy_compact, case.description


@pytest.mark.parametrize("case", [c for c in CASES if c.fixed_policy is not None], ids=_ids)
def test_fixed_policy_is_compliant_and_needs_no_further_fix(case: PolicyCase) -> None:
    # Given the fix the fixture expects
    assert case.fixed_policy is not None
    # When the fixed policy is evaluated again
    evaluation = evaluate(case.fixed_policy, case.context, case.options)
    # Then it is compliant and fixing it again changes nothing
    assert evaluation.verdict is Verdict.COMPLIANT
    assert evaluation.problems == ()
    assert plan_fix(case.fixed_policy, case.context, case.options) is None


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_every_problem_names_a_valid_statement_and_says_one_line(case: PolicyCase) -> None:
    # Given a fixture
    evaluation = evaluate(case.policy, case.context, case.options)
    count = (
        len(evaluation.original["Statement"])
        if evaluation.original and isinstance(evaluation.original["Statement"], list)
        else 1
    )
    # Then each problem points into the Statement list (or at the whole document) with one line of text
    for problem in evaluation.problems:
        assert problem.statement is None or 0 <= problem.statement < count
        assert problem.message and "\n" not in problem.message


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c.policy, dict)], ids=_ids)
def test_evaluation_leaves_the_fixture_document_untouched(case: PolicyCase) -> None:
    # Given a fixture document and a copy of it
    before = copy.deepcopy(case.policy)
    # When it is evaluated and fixed
    evaluation = evaluate(case.policy, case.context, case.options)
    # Then the input is unchanged, and the evaluation holds a deep copy of it
    assert case.policy == before
    assert evaluation.original == case.policy
    assert evaluation.original is not None
    statements = evaluation.original["Statement"]
    (statements[0] if isinstance(statements, list) and statements else statements).clear()
    assert case.policy == before
