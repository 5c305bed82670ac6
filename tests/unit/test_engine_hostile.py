"""The engine against hostile documents: bounded work, no crash, no judgement of what IAM would refuse.

Work is counted in function calls (tests/work.py), never timed: the count is the same on a loaded machine.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import EngineOptions, Evaluation, ProblemCode, Require, RoleContext, Verdict
from chalicelib.domain.policy import decode_document, render_diff, to_compact_json
from tests.work import calls

ACCOUNT = "111122223333"
CTX = RoleContext(account_id=ACCOUNT)
STATES = {"Service": "states.amazonaws.com"}
PINS = {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"}}
# Any document within the size quota is evaluated in work linear in its size: about 1.7 calls per character
# for the worst shapes below, where a backtracking matcher makes millions (27 s for the 70-star value).
CALLS_PER_CHARACTER = 3


def statement(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Effect": "Allow", "Principal": STATES, "Action": "sts:AssumeRole"}
    body.update(fields)
    return body


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def codes(evaluation: Evaluation) -> list[str]:
    return [problem.code.value for problem in evaluation.problems]


def work(document: Any) -> int:
    """The function calls one evaluation of ``document`` makes."""
    return calls(lambda: evaluate(document, CTX))


def budget(document: Any) -> int:
    """The most work a document of this size may cost: linear in its compact JSON text."""
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    return CALLS_PER_CHARACTER * len(text)


# --- wildcards: the reviewed cases and the worst documents within the quota -----------------------


def test_the_reviewed_arn_like_value_with_70_stars_evaluates_at_once() -> None:
    # Given the review's 323-character policy: an ArnLike SourceArn whose service field is 70 stars and x
    document = policy(
        statement(
            Condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": "arn:aws:" + "*" * 70 + f"x:*:{ACCOUNT}:*"},
            }
        )
    )
    assert len(json.dumps(document, separators=(",", ":"))) == 323
    # When evaluated (27 s with the regex matcher, doubling with each star)
    # Then it is decided within the budget: the value pins nothing, since "...x" cannot match states
    assert work(document) <= budget(document)
    assert codes(evaluate(document, CTX)) == ["missing_source_arn"]


def test_the_reviewed_action_with_20_stars_evaluates_at_once() -> None:
    document = policy(statement(Action="sts:" + "*" * 20 + "TagSession"))
    assert work(document) <= budget(document)
    assert evaluate(document, CTX).verdict is Verdict.NOT_APPLICABLE


def _arn_like_spellings(count: int) -> list[str]:
    return ["".join(c.upper() if n >> i & 1 else c.lower() for i, c in enumerate("ArnLike")) for n in range(count)]


def _source_arn(operator: str, value: Any) -> dict[str, Any]:
    return policy(statement(Condition={operator: {"aws:SourceArn": value}}))


def _stars_arn(stars: str) -> str:
    return f"arn:aws:{stars}x:*:{ACCOUNT}:*"


def _spellings(k: int) -> dict[str, Any]:
    blocks = {name: {"aws:SourceArn": _stars_arn("*" * 20)} for name in _arn_like_spellings(min(k, 128))}
    return policy(statement(Condition=blocks))


MIXED = {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}

WORST: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
    ("stars in an ArnLike service field", lambda k: _source_arn("ArnLike", _stars_arn("*" * k))),
    ("'*?' pairs in an ArnEquals service field", lambda k: _source_arn("ArnEquals", _stars_arn("*?" * k))),
    ("stars in a StringLike value", lambda k: _source_arn("StringLike", _stars_arn("*" * k))),
    ("many 20-star SourceArn values", lambda k: _source_arn("ArnLike", [_stars_arn("*" * 20)] * k)),
    ("ArnLike blocks in every spelling", _spellings),
    ("stars in an action", lambda k: policy(statement(Action="sts:" + "*" * k + "TagSession"))),
    ("'*?' pairs in an action", lambda k: policy(statement(Action="sts:" + "*?" * k + "x"))),
    ("many 20-star actions", lambda k: policy(statement(Action=["sts:" + "*" * 20 + "TagSession"] * k))),
    ("many mixed statements, each split", lambda k: policy(*[statement(Principal=MIXED) for _ in range(k)])),
    ("many vulnerable statements", lambda k: policy(*[statement() for _ in range(k)])),
    ("a Fn::Sub principal of unclosed '${'", lambda k: policy(statement(Principal={"Service": {"Fn::Sub": "${" * k}}))),
]


def filled(build: Callable[[int], dict[str, Any]], limit: int) -> dict[str, Any]:
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if len(json.dumps(build(middle), separators=(",", ":"))) <= limit:
            low = middle
        else:
            high = middle - 1
    return build(low)


@pytest.mark.parametrize("limit", [2_048, 10_240])
@pytest.mark.parametrize(("name", "build"), WORST, ids=[name for name, _ in WORST])
def test_the_worst_documents_within_the_quota_evaluate_within_the_budget(
    name: str, build: Callable[[int], dict[str, Any]], limit: int
) -> None:
    # Given a hostile document filled up to the size limit
    document = filled(build, limit)
    assert len(json.dumps(document, separators=(",", ":"))) > limit * 0.9, name
    # When evaluated as a dict and as the JSON text IAM holds
    # Then each costs work linear in its size
    assert work(document) <= budget(document), name
    assert work(json.dumps(document)) <= budget(document), name


# --- huge and deep documents ----------------------------------------------------------------------


def test_many_actions_take_linear_work() -> None:
    # Given the same statement with 5,000 and then 10,000 actions before sts:AssumeRole
    def counted(count: int) -> int:
        document = policy(statement(Action=[*(["sts:TagSession"] * count), "sts:AssumeRole"]))
        assert codes(evaluate(document, CTX)) == ["missing_source_account", "missing_source_arn", "too_large"]
        return work(document)

    small, large = counted(5_000), counted(10_000)
    # Then twice the actions cost about twice the work (quadratic would be four times)
    assert large <= 2.2 * small


def test_splitting_thousands_of_statements_takes_linear_work() -> None:
    # Given many mixed statements without Sid: each split derives the next free StepFunctionsTrustN
    def counted(count: int) -> int:
        mixed = statement(Principal={"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]})
        document = policy(*[mixed] * count)
        options = EngineOptions(size_quota=10_000_000)
        evaluation = evaluate(document, CTX, options)
        assert evaluation.fixed_policy is not None
        assert evaluation.fixed_policy["Statement"][-1]["Sid"] == f"StepFunctionsTrust{count}"
        return calls(lambda: evaluate(document, CTX, options))

    small, large = counted(500), counted(2_000)
    # Then four times the statements cost about four times the work (quadratic would be sixteen)
    assert large <= 4.4 * small


def nested_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [65, 500, 5_000])
def test_deep_values_are_unparseable_not_a_crash(depth: int) -> None:
    # Given a vulnerable policy carrying a value nested deeper than any trust policy, as a dict
    document = {**policy(statement()), "Padding": nested_list(depth)}
    # When evaluated
    evaluation = evaluate(document, CTX)
    # Then a human is asked to look, and nothing is fixed
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert codes(evaluation) == ["unparseable"]
    assert "nested too deeply" in evaluation.problems[0].message


@pytest.mark.parametrize("depth", [65, 500, 100_000])
def test_deep_json_text_is_unparseable_not_a_crash(depth: int) -> None:
    text = '{"Version":"2012-10-17","Statement":[],"Padding":' + "[" * depth + "]" * depth + "}"
    evaluation = evaluate(text, CTX)
    assert (evaluation.verdict, codes(evaluation)) == (Verdict.NEEDS_REVIEW, ["unparseable"])


def test_values_nested_within_the_limit_are_judged() -> None:
    # Given a template value nested 50 deep (25 functions) where a condition value goes
    deep: Any = "x"
    for _ in range(25):
        deep = {"Fn::Select": [0, deep]}
    document = policy(statement(Condition={"StringEquals": {"aws:SourceAccount": deep}}))
    # Then it is read, and reported as the unresolved template it is
    assert "unresolved_value" in codes(evaluate(document, CTX))


def test_an_evaluation_near_the_recursion_limit_still_answers() -> None:
    # Given a caller already deep in its own stack
    results: list[Evaluation] = []
    text = json.dumps(policy(statement(Condition={"StringEquals": {"aws:SourceAccount": {"Ref": "AccountId"}}})))

    def descend(levels: int) -> None:
        if levels:
            descend(levels - 1)
        else:
            results.append(evaluate(text, CTX))

    depth = len_of_stack()
    for spare in (10, 20, 40, 80):
        descend(sys.getrecursionlimit() - depth - spare)
    # Then every call answers (an unparseable verdict when the stack ran out), never raises
    assert len(results) == 4
    assert all(isinstance(result.verdict, Verdict) for result in results)


def len_of_stack() -> int:
    frame, count = sys._getframe(), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1  # type: ignore[assignment]
    return count


# --- documents IAM would refuse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"Effect": "Alow"}, "Effect 'Alow' is neither Allow nor Deny"),
        (
            {"principal": STATES, "Principal": None},
            "key 'principal' is not Principal (statement keys are case-sensitive)",
        ),
        ({"Action": None}, "no Action or NotAction"),
        ({"Principal": None}, "no Principal or NotPrincipal"),
        ({"Comment": "x"}, "unknown key 'Comment'"),
        ({"Resource": "*"}, "Resource is not allowed in a trust policy"),
        ({"Condition": {"StringEqual": {"aws:SourceAccount": ACCOUNT}}}, "condition operator 'StringEqual' is not one"),
        ({"Action": "AssumeRole"}, "action 'AssumeRole' has no service prefix"),
        ({"Sid": "a-b"}, "Sid 'a-b' is not alphanumeric"),
    ],
)
def test_a_statement_iam_would_refuse_is_explained_and_never_fixed(change: dict[str, Any], says: str) -> None:
    # Given a vulnerable statement changed into something IAM refuses
    body = {key: value for key, value in {**statement(), **change}.items() if value is not None}
    # When evaluated
    evaluation = evaluate(policy(body), CTX)
    # Then it needs review for that reason alone, pointing at the statement, and has no fix
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert [(p.code, p.statement) for p in evaluation.problems] == [(ProblemCode.INVALID_DOCUMENT, 0)]
    assert says in evaluation.problems[0].message
    assert evaluation.fixed_policy is None and evaluation.original is not None


def test_lower_case_effects_and_operators_are_still_accepted() -> None:
    document = policy(statement(Effect="allow", Condition={"stringequals": {"aws:SourceAccount": ACCOUNT}}))
    assert evaluate(document, CTX).verdict is Verdict.NON_COMPLIANT


def test_a_service_linked_role_stays_not_applicable_whatever_its_document() -> None:
    ctx = RoleContext(account_id=ACCOUNT, path="/aws-service-role/states.amazonaws.com/")
    assert evaluate(policy(statement(Effect="Alow")), ctx).verdict is Verdict.NOT_APPLICABLE
    assert evaluate('{"Statement": [], "Statement": []}', ctx).verdict is Verdict.NOT_APPLICABLE


def test_names_with_line_breaks_still_give_one_line_messages() -> None:
    document = policy(statement(Condition={"StringEquals\n": {"aws:SourceAccount\n": ACCOUNT}}))
    evaluation = evaluate(document, CTX)
    assert evaluation.problems
    assert all("\n" not in problem.message for problem in evaluation.problems)


# --- duplicate keys -------------------------------------------------------------------------------


def test_duplicate_keys_name_the_keys_and_keep_no_original() -> None:
    text = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Effect": "Allow",'
        ' "Action": "sts:AssumeRole", "Action": "*"}]}'
    )
    evaluation = evaluate(text, CTX)
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert [(p.code, p.statement) for p in evaluation.problems] == [(ProblemCode.DUPLICATE_KEYS, None)]
    assert "'Effect', 'Action'" in evaluation.problems[0].message
    # The parsed copy would hold only the last of each key, which is not the document: no original
    assert evaluation.original is None and evaluation.fixed_policy is None


def test_duplicate_keys_are_seen_in_a_document_decoded_earlier() -> None:
    # Given a GetRole response decoded by the CLI before the engine sees its policy (a dict by then)
    decoded = decode_document('{"Role": {"AssumeRolePolicyDocument": {"Statement": [], "Statement": []}}}')
    # When the engine evaluates the inner document
    evaluation = evaluate(decoded["Role"]["AssumeRolePolicyDocument"], CTX)
    # Then the repeated key is still noticed
    assert codes(evaluation) == ["duplicate_keys"]


def test_equal_values_under_a_repeated_key_are_still_ambiguous_to_iam() -> None:
    text = json.dumps(policy(statement(Condition=PINS))).replace('"Version"', '"Version": "2012-10-17", "Version"')
    assert codes(evaluate(text, CTX)) == ["duplicate_keys"]


# --- faithful fix: number literals ----------------------------------------------------------------

LITERALS = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"states.amazonaws.com"},'
    '"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},'
    '"Action":"sts:AssumeRole","Condition":{"NumericEquals":{"aws:MultiFactorAuthAge":[1.10,1e3,-0,'
    "123456789012345678901234567890,2.5E-3,0.0]}}}]}"
)


def test_the_fix_writes_every_number_as_the_document_had_it() -> None:
    # Given a policy text with number literals Python would print differently
    fixed = plan_fix(LITERALS, CTX)
    assert fixed is not None
    # Then the fixed text holds them exactly, byte for byte, and so does the diff
    assert '"aws:MultiFactorAuthAge":[1.10,1e3,-0,123456789012345678901234567890,2.5E-3,0.0]' in to_compact_json(fixed)
    assert "1.10," in render_diff(json.loads(LITERALS), fixed)
    # And the fix is deterministic, byte for byte
    assert to_compact_json(plan_fix(LITERALS, CTX)) == to_compact_json(fixed)


def test_kept_literals_are_still_numbers_for_everyone_else() -> None:
    fixed = plan_fix(LITERALS, CTX)
    assert fixed is not None
    values = fixed["Statement"][1]["Condition"]["NumericEquals"]["aws:MultiFactorAuthAge"]
    assert values == [1.1, 1000.0, 0, 123456789012345678901234567890, 0.0025, 0.0]
    assert all(isinstance(value, int | float) for value in values)
    # json.dumps still accepts the fixed policy (writing Python's rendering of the numbers)
    assert json.loads(json.dumps(fixed)) == fixed
    # and the fixed policy evaluated again is compliant and needs no second fix
    assert evaluate(fixed, CTX).verdict is Verdict.COMPLIANT
    assert plan_fix(fixed, CTX) is None


def test_the_size_quota_counts_literals_as_written() -> None:
    # Given a fix whose size differs once 1e3 is written as 1000.0
    fixed = plan_fix(LITERALS, CTX)
    assert fixed is not None
    size = len(to_compact_json(fixed))
    # Then a quota of exactly the literal size allows it, and one less refuses it
    assert evaluate(LITERALS, CTX, EngineOptions(size_quota=size)).verdict is Verdict.NON_COMPLIANT
    assert "too_large" in codes(evaluate(LITERALS, CTX, EngineOptions(size_quota=size - 1)))


# --- unusable pins --------------------------------------------------------------------------------


def test_an_unusable_pin_is_a_warning_that_keeps_the_fix() -> None:
    # Given a literal-star SourceArn under StringEquals and no SourceAccount
    document = policy(statement(Condition={"StringEquals": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"}}))
    # When evaluated
    evaluation = evaluate(document, CTX)
    # Then it is non_compliant as before (SourceAccount is missing), with the warning beside
    assert evaluation.verdict is Verdict.NON_COMPLIANT
    assert codes(evaluation) == ["missing_source_account", "unusable_pin"]
    assert "StringEquals" in evaluation.problems[1].message
    # And the fix adds the account; the fixed policy is compliant and keeps the warning
    assert evaluation.fixed_policy is not None
    again = evaluate(evaluation.fixed_policy, CTX)
    assert again.verdict is Verdict.COMPLIANT
    assert codes(again) == ["unusable_pin"]


def test_an_unusable_pin_never_decides_the_verdict() -> None:
    # Given the same pins with and without the literal star, under require=either and both
    for require in Require:
        usable = policy(
            statement(
                Condition={
                    "StringEquals": {
                        "aws:SourceAccount": ACCOUNT,
                        "aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:Orders",
                    }
                }
            )
        )
        unusable = policy(
            statement(
                Condition={
                    "StringEquals": {
                        "aws:SourceAccount": ACCOUNT,
                        "aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:*",
                    }
                }
            )
        )
        options = EngineOptions(require=require)
        assert evaluate(usable, CTX, options).verdict is evaluate(unusable, CTX, options).verdict
        assert codes(evaluate(unusable, CTX, options)) == ["unusable_pin"]


def test_wildcards_under_arn_like_and_string_like_are_patterns_not_warnings() -> None:
    for operator in ("ArnLike", "ArnEquals"):
        document = policy(
            statement(
                Condition={
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    operator: {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"},
                }
            )
        )
        assert codes(evaluate(document, CTX)) == []
