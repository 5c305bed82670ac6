"""Hypothesis properties of the engine over generated trust policies."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import EngineOptions, Require, RoleContext, Verdict
from chalicelib.domain.policy import service_kind, statement_list, to_compact_json

ACCOUNT = "111122223333"
SID = re.compile(r"[A-Za-z0-9]+")
FOREIGN = "444455556666"

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@st.composite
def shuffled(draw: st.DrawFn, strategy: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A dict from ``strategy`` with its keys in a drawn order: the fix must keep whatever order it gets."""
    drawn = draw(strategy)
    order = draw(st.permutations(list(drawn)))
    return {key: drawn[key] for key in order}


@st.composite
def mostly(draw: st.DrawFn, common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int) -> Any:
    """``common``, and ``rare`` about once in ``odds`` draws (one_of would weigh them evenly)."""
    return draw(rare) if draw(st.integers(min_value=1, max_value=odds)) == 1 else draw(common)


def one_or_many(element: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[Any]:
    return st.one_of(element, st.lists(element, min_size=1, max_size=max_size))


actions = st.sampled_from(
    [
        "sts:AssumeRole",
        "sts:AssumeRole",
        "STS:ASSUMEROLE",
        "sts:assumerole",
        "sts:*",
        "*",
        "sts:Assume*",
        "sts:Assum?Role",
        "sts:TagSession",
        "sts:AssumeRoleWithSAML",
        "sts:AssumeRoleWithWebIdentity",
    ]
)
services = st.sampled_from(
    [
        "states.amazonaws.com",
        "states.amazonaws.com",
        "States.AmazonAWS.com",
        "states.eu-west-1.amazonaws.com",
        "states.cn-north-1.amazonaws.com.cn",
        "lambda.amazonaws.com",
        "events.amazonaws.com",
        "scheduler.amazonaws.com",
        {"Fn::Sub": "states.${AWS::Region}.amazonaws.com"},
        {"Fn::Sub": "lambda.${AWS::URLSuffix}"},
    ]
)
aws_principals = st.sampled_from([f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:role/Admin", FOREIGN])
federated = st.sampled_from(["cognito-identity.amazonaws.com", f"arn:aws:iam::{ACCOUNT}:saml-provider/Okta"])
principal_objects = shuffled(
    st.fixed_dictionaries(
        {"Service": one_or_many(services)},
        optional={
            "AWS": one_or_many(aws_principals),
            "Federated": one_or_many(federated),
            "CanonicalUser": st.just("79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"),
        },
    )
)
principals = mostly(principal_objects, st.sampled_from(["*", {"AWS": "*"}, {"AWS": [FOREIGN, "*"]}]), odds=12)

operators = st.sampled_from(
    [
        "StringEquals",
        "stringequals",
        "StringLike",
        "StringEqualsIgnoreCase",
        "StringEqualsIfExists",
        "StringNotEquals",
        "ForAnyValue:StringEquals",
        "ForAllValues:StringLike",
        "ArnLike",
        "arnLike",
        "ArnEquals",
        "ArnLikeIfExists",
        "ArnNotLike",
        "Null",
        "Bool",
    ]
)
condition_keys = st.sampled_from(
    ["aws:SourceAccount", "AWS:SOURCEACCOUNT", "aws:SourceArn", "aws:sourcearn", "aws:SourceOrgID", "sts:ExternalId"]
)
condition_scalars = st.sampled_from(
    [
        ACCOUNT,
        ACCOUNT,
        int(ACCOUNT),
        FOREIGN,
        int(FOREIGN),
        "*",
        "1111222233?3",
        "${aws:PrincipalAccount}",
        f"arn:aws:states:*:{ACCOUNT}:*",
        f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:*",
        f"arn:aws-cn:states:*:{ACCOUNT}:*",
        "arn:aws:states:*:*:*",
        f"arn:aws:states:*:{FOREIGN}:*",
        f"arn:aws:events:*:{ACCOUNT}:rule/x",
        "o-a1b2c3d4e5",
        "true",
        True,
    ]
)
condition_values = st.one_of(condition_scalars, st.lists(condition_scalars, max_size=3))
random_conditions = st.dictionaries(
    operators, st.dictionaries(condition_keys, condition_values, max_size=3), max_size=4
)
# The AWS guide's protected form, so that compliant statements are generated too, alone or beside others.
pinned_conditions = st.fixed_dictionaries(
    {
        "StringEquals": st.just({"aws:SourceAccount": ACCOUNT}),
        "ArnLike": st.just({"aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:*"}),
    },
    optional={"StringEqualsIfExists": st.just({"aws:SourceOrgID": "o-a1b2c3d4e5"})},
)
# Weak values under the very operators the fix uses, to exercise the no-overwrite fallbacks.
weak_values = st.sampled_from(["*", "1111222233?3", "arn:aws:states:*:*:*", [], f"arn:aws:events:*:{ACCOUNT}:*"])
held_conditions = st.dictionaries(
    st.sampled_from(["StringEquals", "StringLike", "ArnLike", "ArnEquals", "arnlike"]),
    st.fixed_dictionaries(
        {}, optional={"aws:SourceAccount": weak_values, "AWS:SOURCEACCOUNT": weak_values, "aws:SourceArn": weak_values}
    ),
    min_size=1,
    max_size=4,
)
conditions = mostly(random_conditions, st.one_of(pinned_conditions, held_conditions), odds=3)
effects = st.sampled_from(["Allow", "Allow", "Allow", "Allow", "allow", "Deny"])
sids = st.sampled_from(
    ["", "Trust", "Trust", "TrustStepFunctions", "StepFunctionsTrust", "stepfunctionstrust2", "Run-1"]
)

usual_statements = shuffled(
    st.fixed_dictionaries(
        {"Effect": effects, "Principal": principals, "Action": one_or_many(actions)},
        optional={"Sid": sids, "Condition": conditions},
    )
)
odd_statements = shuffled(
    st.fixed_dictionaries(
        {"Effect": effects},
        optional={
            "Sid": sids,
            "Action": one_or_many(actions),
            "NotAction": one_or_many(actions),
            "Principal": principals,
            "NotPrincipal": principal_objects,
            "Condition": conditions,
            # Not a statement key: IAM refuses the document, and the engine must never fix it.
            "Comment": st.text(max_size=8),
        },
    )
)
statements = mostly(usual_statements, odd_statements, odds=10)
broad_policies = shuffled(
    st.fixed_dictionaries(
        {"Statement": st.one_of(st.lists(statements, min_size=1, max_size=3), statements)},
        optional={"Version": st.just("2012-10-17"), "Id": st.sampled_from(["", "Trust", "policy-1"])},
    )
)
# One Step Functions statement, often mixed, whose conditions crowd the operators the fix uses: the
# broad strategy reaches these fallbacks too rarely to pin them down.
focused_statements = shuffled(
    st.fixed_dictionaries(
        {
            "Effect": st.just("Allow"),
            "Principal": shuffled(
                st.fixed_dictionaries(
                    {"Service": one_or_many(st.sampled_from(["states.amazonaws.com", "lambda.amazonaws.com"]))},
                    optional={"AWS": aws_principals},
                )
            ),
            "Action": one_or_many(st.sampled_from(["sts:AssumeRole", "sts:TagSession"])),
            "Condition": st.one_of(held_conditions, random_conditions),
        },
        optional={"Sid": sids},
    )
)
focused_policies = st.fixed_dictionaries(
    {"Version": st.just("2012-10-17"), "Statement": st.lists(focused_statements, min_size=1, max_size=2)}
)
policies = mostly(broad_policies, focused_policies, odds=3)
contexts = st.builds(
    RoleContext,
    account_id=st.just(ACCOUNT),
    partition=st.sampled_from(["aws", "aws", "aws", "aws-cn", "aws-us-gov"]),
    path=st.sampled_from(["/", "/", "/", "/workflows/", "/service-role/", "/aws-service-role/states.amazonaws.com/"]),
)
engine_options = st.builds(EngineOptions, require=st.sampled_from(list(Require)))

json_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)


# --- helpers for the "only narrows" property ------------------------------------------------------


def principal_pairs(statement: dict[str, Any]) -> set[tuple[str, str]]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return {("*", "*")} if principal == "*" else set()
    pairs = set()
    for kind, value in principal.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.add((kind, json.dumps(item, sort_keys=True)))
    return pairs


def is_states_pair(pair: tuple[str, str]) -> bool:
    kind, item = pair
    return kind.lower() == "service" and service_kind(json.loads(item)) == "states"


def names_step_functions(statement: dict[str, Any]) -> bool:
    return isinstance(statement.get("Principal"), dict) and any(map(is_states_pair, principal_pairs(statement)))


def condition_triples(statement: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (operator, key, json.dumps(value))
        for operator, block in statement.get("Condition", {}).items()
        for key, value in block.items()
    }


def folded_duplicates(statement: dict[str, Any]) -> int:
    """How many condition keys repeat another key of their block when case is ignored."""
    return sum(len(block) - len({key.lower() for key in block}) for block in statement.get("Condition", {}).values())


def without(statement: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in statement.items() if key not in keys}


def parsed(policy: Any) -> dict[str, Any]:
    evaluation = evaluate(policy, RoleContext(account_id=ACCOUNT))
    assert evaluation.original is not None
    return evaluation.original


# --- properties -----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options)
def test_evaluation_never_mutates_its_input(policy: dict[str, Any], ctx: RoleContext, options: EngineOptions) -> None:
    # Given a generated policy and a deep copy of it
    before = copy.deepcopy(policy)
    # When it is evaluated and fixed
    evaluation = evaluate(policy, ctx, options)
    plan_fix(policy, ctx, options)
    # Then the input is unchanged, and a fix exists exactly when the verdict is non_compliant
    assert policy == before
    assert to_compact_json(policy) == to_compact_json(before)
    assert (evaluation.fixed_policy is not None) == (evaluation.verdict is Verdict.NON_COMPLIANT)


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options)
def test_a_fix_only_narrows_access(policy: dict[str, Any], ctx: RoleContext, options: EngineOptions) -> None:
    # Given a generated policy with a fix
    fixed = plan_fix(policy, ctx, options)
    if fixed is None:
        return
    original = statement_list(parsed(policy))
    result = statement_list(fixed)
    # Then no statement was removed: the new ones are exactly those with a Sid the original did not use,
    # each Sid alphanumeric and unique
    old_sids = {st["Sid"].lower() for st in original if "Sid" in st}
    added = [i for i, st in enumerate(result) if "Sid" in st and st["Sid"].lower() not in old_sids]
    assert all(SID.fullmatch(result[i]["Sid"]) for i in added)
    assert len({result[i]["Sid"].lower() for i in added}) == len(added)
    kept = [i for i in range(len(result)) if i not in added]
    assert len(kept) == len(original)
    for before, position in zip(original, kept, strict=True):
        after = result[position]
        if not names_step_functions(before):
            # A statement that does not name Step Functions is untouched
            assert after == before
        elif position + 1 in added:
            # A split statement only loses its Step Functions principals
            assert without(after, "Principal") == without(before, "Principal")
            assert principal_pairs(after) == {p for p in principal_pairs(before) if not is_states_pair(p)}
            # and the new statement right after it is a copy for those principals, with more conditions
            new = result[position + 1]
            assert without(new, "Sid", "Principal", "Condition") == without(before, "Sid", "Principal", "Condition")
            assert principal_pairs(new) == {p for p in principal_pairs(before) if is_states_pair(p)}
            assert condition_triples(before) < condition_triples(new)
            assert folded_duplicates(new) == folded_duplicates(before)
        else:
            # A statement fixed in place only gains conditions, never a second spelling of a key in a block
            assert without(after, "Condition") == without(before, "Condition")
            assert condition_triples(before) <= condition_triples(after)
            assert folded_duplicates(after) == folded_duplicates(before)
    # And across the document not one principal was added or lost
    assert set().union(*map(principal_pairs, result)) == set().union(*map(principal_pairs, original))


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options)
def test_a_fix_is_compliant_and_idempotent(policy: dict[str, Any], ctx: RoleContext, options: EngineOptions) -> None:
    # Given a generated policy with a fix
    fixed = plan_fix(policy, ctx, options)
    if fixed is None:
        return
    # When the fixed policy is evaluated and fixed again
    again = evaluate(fixed, ctx, options)
    # Then it is compliant, and a second fix changes nothing
    assert again.verdict is Verdict.COMPLIANT, again.problems
    assert plan_fix(fixed, ctx, options) is None


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options)
def test_evaluation_is_deterministic(policy: dict[str, Any], ctx: RoleContext, options: EngineOptions) -> None:
    # Given the same policy twice, a deep copy of it, and its JSON text
    results = [
        evaluate(policy, ctx, options),
        evaluate(policy, ctx, options),
        evaluate(copy.deepcopy(policy), ctx, options),
        evaluate(json.dumps(policy, indent=2), ctx, options),
    ]
    # Then the verdicts and problems are equal, and the fixes identical byte for byte
    assert len({(r.verdict, r.problems) for r in results}) == 1
    assert len({to_compact_json(r.fixed_policy) for r in results}) == 1


@PROPERTY_SETTINGS
@given(document=json_junk, ctx=contexts)
def test_evaluation_never_raises_on_arbitrary_json(document: Any, ctx: RoleContext) -> None:
    # Given any JSON value, wrapped or not around a Statement key
    for candidate in (document, {"Statement": document}, {"Statement": [document]}, json.dumps(document)):
        # When evaluated
        evaluation = evaluate(candidate, ctx)
        # Then an answer comes back, with a fix only for non_compliant
        assert isinstance(evaluation.verdict, Verdict)
        assert (evaluation.fixed_policy is not None) == (evaluation.verdict is Verdict.NON_COMPLIANT)


number_literals = st.lists(
    st.sampled_from(["1.10", "1e3", "1E3", "-0", "-0.0", "0.50", "2.5E-3", "123456789012345678901234567890", "7"]),
    min_size=1,
    max_size=4,
)


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options, literals=number_literals)
def test_a_fix_writes_number_literals_back_as_written(
    policy: dict[str, Any], ctx: RoleContext, options: EngineOptions, literals: list[str]
) -> None:
    # Given a generated policy as JSON text, with a Deny statement holding number literals
    deny = {"Effect": "Deny", "Principal": {"AWS": FOREIGN}, "Action": "sts:AssumeRole"}
    deny["Condition"] = {"NumericEquals": {"aws:MultiFactorAuthAge": "__LITERALS__"}}
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    written = "[" + ",".join(literals) + "]"
    text = json.dumps({**policy, "Statement": [*statements, deny]}).replace('"__LITERALS__"', written)
    # When it is fixed
    fixed = plan_fix(text, ctx, options)
    # Then the literals are in the fix exactly as written
    if fixed is not None:
        assert f'"aws:MultiFactorAuthAge":{written}' in to_compact_json(fixed)


@PROPERTY_SETTINGS
@given(policy=policies, ctx=contexts, options=engine_options)
def test_a_document_with_a_repeated_key_is_never_fixed(
    policy: dict[str, Any], ctx: RoleContext, options: EngineOptions
) -> None:
    # Given a generated policy whose JSON text repeats its Statement key (the first one empty)
    text = json.dumps(policy).replace('"Statement": ', '"Statement": [], "Statement": ', 1)
    # When evaluated
    evaluation = evaluate(text, ctx, options)
    # Then it is never fixed, and needs review unless the role is one nobody may edit
    assert evaluation.fixed_policy is None
    if not ctx.service_linked:
        assert [p.code.value for p in evaluation.problems] == ["duplicate_keys"]
