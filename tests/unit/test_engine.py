"""chalicelib.domain.engine: behaviours the fixture table does not spell out (messages, options, edges)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import EngineOptions, ProblemCode, Require, RoleContext, Verdict
from chalicelib.domain.policy import to_compact_json

ACCOUNT = "111122223333"
CTX = RoleContext(account_id=ACCOUNT)


def states_policy(**statement: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "states.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    body.update(statement)
    return {"Version": "2012-10-17", "Statement": [body]}


def messages(evaluation: Any) -> dict[str, str]:
    return {p.code.value: p.message for p in evaluation.problems}


# --- explanations ---------------------------------------------------------------------------------


def test_a_condition_that_pins_nothing_is_explained() -> None:
    # Given aws:SourceAccount only under an IfExists operator
    policy = states_policy(Condition={"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}})
    # When evaluated
    found = messages(evaluate(policy, CTX))
    # Then the message says why it does not count
    assert found["missing_source_account"] == (
        "aws:SourceAccount appears only under StringEqualsIfExists, which pins nothing"
    )


def test_a_missing_key_names_the_account_it_should_pin() -> None:
    found = messages(evaluate(states_policy(), CTX))
    assert found["missing_source_account"].endswith(f"no aws:SourceAccount condition pins account {ACCOUNT}")
    assert "aws:SourceArn" in found["missing_source_arn"]


def test_every_weak_use_of_a_key_is_listed_in_one_line() -> None:
    # Given two weak uses of aws:SourceArn
    policy = states_policy(
        Condition={
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": "arn:aws:states:*:*:*"},
            "ArnNotEquals": {"aws:SourceArn": "arn:aws:states:*:444455556666:*"},
        }
    )
    # When evaluated
    message = messages(evaluate(policy, CTX))["missing_source_arn"]
    # Then both are named, with their reasons
    assert message == (
        "aws:SourceArn appears only under ArnLike with value 'arn:aws:states:*:*:*', which has a wildcard "
        "account, and under ArnNotEquals, which pins nothing"
    )


def test_a_foreign_account_message_names_both_accounts() -> None:
    policy = states_policy(Condition={"StringEquals": {"aws:SourceAccount": "444455556666"}})
    message = messages(evaluate(policy, CTX))["foreign_account"]
    assert "444455556666" in message and ACCOUNT in message


def test_too_large_names_both_sizes() -> None:
    # Given a quota just below the fixed size
    fixed_size = len(to_compact_json(plan_fix(states_policy(), CTX)))
    options = EngineOptions(size_quota=fixed_size - 1)
    # When evaluated
    evaluation = evaluate(states_policy(), CTX, options)
    # Then it needs review, and the whole-document problem gives both numbers
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    too_large = next(p for p in evaluation.problems if p.code is ProblemCode.TOO_LARGE)
    assert too_large.statement is None
    assert f"{fixed_size} characters" in too_large.message and str(fixed_size - 1) in too_large.message


def test_a_fix_exactly_at_the_quota_is_allowed() -> None:
    fixed_size = len(to_compact_json(plan_fix(states_policy(), CTX)))
    evaluation = evaluate(states_policy(), CTX, EngineOptions(size_quota=fixed_size))
    assert evaluation.verdict is Verdict.NON_COMPLIANT


def test_problems_point_at_the_statement_they_are_about() -> None:
    # Given a Deny, a protected statement and an open one
    policy = {
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"},
            states_policy(Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})["Statement"][0],
            states_policy()["Statement"][0],
        ]
    }
    # When evaluated
    evaluation = evaluate(policy, CTX)
    # Then each problem carries the index of its statement in the Statement list
    assert [(p.statement, p.code.value) for p in evaluation.problems] == [
        (1, "missing_source_arn"),
        (2, "missing_source_account"),
        (2, "missing_source_arn"),
    ]


# --- unparseable input and roles nobody may edit --------------------------------------------------


@pytest.mark.parametrize("document", ["{", "", "[]", None, 7, ["Statement"], {"Statement": [{"Effect": 1}]}])
def test_unreadable_documents_need_review_and_never_raise(document: Any) -> None:
    # Given junk
    # When evaluated
    evaluation = evaluate(document, CTX)
    # Then a human must look, the reason is whole-document, and there is no fix
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert [(p.code, p.statement) for p in evaluation.problems] == [(ProblemCode.UNPARSEABLE, None)]
    assert evaluation.original is None and evaluation.fixed_policy is None


def test_a_service_linked_role_is_not_applicable_even_when_unreadable() -> None:
    ctx = RoleContext(account_id=ACCOUNT, path="/aws-service-role/states.amazonaws.com/")
    assert evaluate("{", ctx).verdict is Verdict.NOT_APPLICABLE
    assert evaluate(states_policy(), ctx).fixed_policy is None


# --- plan_fix -------------------------------------------------------------------------------------


def test_plan_fix_returns_the_fixed_document_for_a_vulnerable_policy() -> None:
    fixed = plan_fix(states_policy(), CTX)
    assert fixed == evaluate(states_policy(), CTX).fixed_policy
    assert fixed is not None and fixed["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"},
    }


@pytest.mark.parametrize(
    "policy",
    [
        states_policy(
            Condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"},
            }
        ),
        states_policy(Principal="*"),
        {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "not json",
    ],
    ids=["compliant", "needs_review", "not_applicable", "unparseable"],
)
def test_plan_fix_returns_none_when_there_is_nothing_safe_to_change(policy: Any) -> None:
    assert plan_fix(policy, CTX) is None


def test_the_same_fix_comes_from_a_dict_a_json_string_and_a_url_encoded_string() -> None:
    # Given one policy in the three shapes IAM and CloudTrail use
    policy = states_policy(Sid="Run")
    text = json.dumps(policy, indent=2)
    # When each is fixed
    fixes = [plan_fix(form, CTX) for form in (policy, text, quote(text, safe=""))]
    # Then the fixes are identical byte for byte
    assert len({to_compact_json(fix) for fix in fixes}) == 1


def test_a_lower_case_effect_is_still_allow() -> None:
    assert evaluate(states_policy(Effect="allow"), CTX).verdict is Verdict.NON_COMPLIANT


def test_a_foreign_account_outside_step_functions_statements_is_not_a_finding() -> None:
    # Given a Lambda statement pinned to another account, beside a protected Step Functions statement
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "444455556666"}},
            },
            states_policy(
                Condition={
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"},
                }
            )["Statement"][0],
        ]
    }
    # Then only Step Functions statements are judged
    assert evaluate(policy, CTX).verdict is Verdict.COMPLIANT


def test_not_principal_needs_review_whatever_the_action() -> None:
    policy = {"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "sts:TagSession"}]}
    assert [p.code for p in evaluate(policy, CTX).problems] == [ProblemCode.NOT_PRINCIPAL]


def test_a_split_keeps_unrelated_statement_fields_on_both_statements() -> None:
    # Given a mixed statement with a Sid and a condition on an unrelated key
    policy = states_policy(
        Sid="Mixed",
        Principal={"Service": ["ec2.amazonaws.com", "states.amazonaws.com"]},
        Condition={"Bool": {"aws:SecureTransport": "true"}},
    )
    # When fixed
    fixed = plan_fix(policy, CTX)
    # Then the original keeps EC2 and every field; the new statement copies the fields and adds the pins
    assert fixed is not None
    original, moved = fixed["Statement"]
    assert original == {**policy["Statement"][0], "Principal": {"Service": ["ec2.amazonaws.com"]}}
    assert moved["Sid"] == "MixedStepFunctions" and moved["Principal"] == {"Service": ["states.amazonaws.com"]}
    assert moved["Action"] == "sts:AssumeRole" and moved["Effect"] == "Allow"
    assert moved["Condition"]["Bool"] == {"aws:SecureTransport": "true"}


def test_a_statement_field_iam_does_not_know_is_never_rewritten() -> None:
    # Given the same mixed statement with a field IAM refuses ("Comment" is no statement key)
    policy = states_policy(Principal={"Service": ["ec2.amazonaws.com", "states.amazonaws.com"]}, Comment="ops")
    # When evaluated
    evaluation = evaluate(policy, CTX)
    # Then a human must look, and there is no fix
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert [(p.code, p.statement) for p in evaluation.problems] == [(ProblemCode.INVALID_DOCUMENT, 0)]
    assert "unknown key 'Comment'" in evaluation.problems[0].message
    assert evaluation.fixed_policy is None


# --- options --------------------------------------------------------------------------------------


def test_a_single_custom_source_arn_is_written_as_a_string() -> None:
    options = EngineOptions(source_arns=("arn:{partition}:states:eu-west-1:{account}:stateMachine:*",))
    fixed = plan_fix(states_policy(), CTX, options)
    assert fixed is not None
    assert fixed["Statement"][0]["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:*"
    }


def test_several_custom_source_arns_are_written_as_a_list_and_pin() -> None:
    # Given two exact state machine ARNs in the aws-cn partition
    options = EngineOptions(
        source_arns=(
            "arn:{partition}:states:cn-north-1:{account}:stateMachine:Orders",
            "arn:{partition}:states:cn-north-1:{account}:stateMachine:Refunds",
        )
    )
    ctx = RoleContext(account_id=ACCOUNT, partition="aws-cn")
    # When fixed
    fixed = plan_fix(states_policy(), ctx, options)
    # Then both are written, in order, and the result is compliant
    assert fixed is not None
    assert fixed["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] == [
        f"arn:aws-cn:states:cn-north-1:{ACCOUNT}:stateMachine:Orders",
        f"arn:aws-cn:states:cn-north-1:{ACCOUNT}:stateMachine:Refunds",
    ]
    assert evaluate(fixed, ctx, options).verdict is Verdict.COMPLIANT


@pytest.mark.parametrize(
    "template",
    [
        "arn:aws:states:*:{account}:*",
        "arn:{partition}:states:*:*:*",
        "arn:{partition}:states:*:111122223333:*",
        "arn:{partition}:lambda:*:{account}:*",
        "arn:{partition}:states:{region}:{account}:*",
        "{partition}:states:*:{account}:*",
    ],
)
def test_engine_options_refuse_source_arns_that_would_not_pin(template: str) -> None:
    with pytest.raises(ValueError, match="source ARN template"):
        EngineOptions(source_arns=(template,))


@pytest.mark.parametrize("kwargs", [{"size_quota": 0}, {"source_arns": ()}])
def test_engine_options_refuse_impossible_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EngineOptions(**kwargs)


def test_require_either_accepts_a_source_arn_pin_alone() -> None:
    policy = states_policy(Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"}})
    assert evaluate(policy, CTX, EngineOptions(require=Require.EITHER)).verdict is Verdict.COMPLIANT
    assert evaluate(policy, CTX).verdict is Verdict.NON_COMPLIANT


def test_evaluation_serialises_to_the_contract_shape() -> None:
    data = evaluate(states_policy(), CTX).to_dict()
    assert list(data) == ["verdict", "problems", "fixed_policy"]
    assert list(data["problems"][0]) == ["code", "statement", "message"]
    assert json.loads(json.dumps(data)) == data
