"""The engine beyond Step Functions: every catalogue entry, its own pins, and Hypothesis properties across them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.catalogue import (
    CATALOGUE,
    DEFAULT_SERVICES,
    STATES,
    Entry,
    Level,
    ServicesError,
    entry_for_principal,
    parse_services,
)
from chalicelib.domain.engine import evaluate, plan_fix
from chalicelib.domain.models import EngineOptions, ProblemCode, Require, RoleContext, Verdict
from chalicelib.domain.policy import has_selected_principal, service_match, statement_list

from .test_engine_properties import PROPERTY_SETTINGS, one_or_many, shuffled

ACCOUNT = "111122223333"
CTX = RoleContext(account_id=ACCOUNT)
ALL = EngineOptions(services=CATALOGUE)
OUT_OF_SCOPE = ("ec2.amazonaws.com", "secretsmanager.amazonaws.com", "elastictranscoder.amazonaws.com")


def trust(service: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition is not None:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def pinned(entry: Entry, prefix: str | None = None) -> dict[str, Any]:
    return {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:{prefix or entry.arn_prefix}:*:{ACCOUNT}:*"},
    }


def ids(entry: Entry) -> str:
    return entry.name


# --- the catalogue as data ------------------------------------------------------------------------


def test_every_entry_names_its_aws_evidence_and_a_note() -> None:
    # Given the catalogue
    # Then every entry cites an AWS documentation page, says why in one line, and is unique
    for entry in CATALOGUE:
        assert entry.evidence.startswith("https://docs.aws.amazon.com/"), entry
        assert entry.note and "\n" not in entry.note
    assert len({entry.principal for entry in CATALOGUE}) == len(CATALOGUE)
    # And the traps the evidence names are in the data
    by_name = {entry.name: entry for entry in CATALOGUE}
    assert by_name["vpc-flow-logs"].arn_prefix == "ec2"
    assert by_name["cloudtrail"].level is Level.ADVISE
    assert by_name["ssm-incidents"].sends_source_account is False
    assert not {"ec2", "secretsmanager", "elastictranscoder", "lambda", "logs"} & set(by_name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ("states.amazonaws.com",)),
        ("", ("states.amazonaws.com",)),
        ("states", ("states.amazonaws.com",)),
        ("scheduler, States", ("states.amazonaws.com", "scheduler.amazonaws.com")),
        ("config.amazonaws.com", ("config.amazonaws.com",)),
        ("ALL", tuple(entry.principal for entry in CATALOGUE)),
    ],
)
def test_the_selection_reads_names_principals_and_all(raw: str | None, expected: tuple[str, ...]) -> None:
    assert tuple(entry.principal for entry in parse_services(raw)) == expected


@pytest.mark.parametrize("raw", ["ec2", "states,,config", "schedule"])
def test_an_unknown_or_empty_name_is_an_error_naming_it(raw: str) -> None:
    with pytest.raises(ServicesError) as caught:
        parse_services(raw)
    assert repr(raw.split(",")[0]) in str(caught.value) or "empty" in str(caught.value)


def test_regional_and_china_forms_name_their_entry_and_near_misses_do_not() -> None:
    config = parse_services("config")[0]
    assert entry_for_principal("config.eu-west-1.amazonaws.com") == config
    assert entry_for_principal("CONFIG.amazonaws.com.cn") == config
    assert entry_for_principal("pods.eks.amazonaws.com") is None
    assert entry_for_principal("monitoring.rds.amazonaws.com") is None
    assert entry_for_principal("config.amazonaws.com", DEFAULT_SERVICES) is None


# --- the engine, entry by entry -------------------------------------------------------------------


@pytest.mark.parametrize("entry", CATALOGUE, ids=ids)
def test_an_unpinned_role_of_each_entry_gets_its_own_prefix_and_only_the_keys_it_sends(entry: Entry) -> None:
    # Given a role trusting one catalogue service without pins, every service selected
    evaluation = evaluate(trust(entry.principal), CTX, ALL)
    # Then it is non_compliant, its problems name the service, and the fix pins the service's own ARN prefix
    assert evaluation.verdict is Verdict.NON_COMPLIANT
    assert {p.service for p in evaluation.problems} == {entry.principal}
    assert evaluation.services == (entry.principal,)
    assert evaluation.auto_fix is (entry.level is Level.ENFORCE)
    assert evaluation.fixed_policy is not None
    condition = statement_list(evaluation.fixed_policy)[0]["Condition"]
    assert condition["ArnLike"] == {"aws:SourceArn": f"arn:aws:{entry.arn_prefix}:*:{ACCOUNT}:*"}
    assert ("StringEquals" in condition) is entry.sends_source_account


@pytest.mark.parametrize("entry", [e for e in CATALOGUE if e is not STATES], ids=ids)
def test_outside_the_default_selection_every_other_entry_is_not_applicable(entry: Entry) -> None:
    assert evaluate(trust(entry.principal), CTX).verdict is Verdict.NOT_APPLICABLE


@pytest.mark.parametrize("entry", CATALOGUE, ids=ids)
def test_a_pin_with_another_entrys_prefix_does_not_count(entry: Entry) -> None:
    # Given a role of each entry pinned with every other entry's ARN prefix
    for other in {e.arn_prefix for e in CATALOGUE} - {entry.arn_prefix}:
        evaluation = evaluate(trust(entry.principal, pinned(entry, other)), CTX, ALL)
        # Then aws:SourceArn is reported missing, naming the wrong service, and the fix adds the right one
        codes = [p.code for p in evaluation.problems]
        assert ProblemCode.MISSING_SOURCE_ARN in codes, (entry.name, other)
        assert evaluation.verdict is Verdict.NON_COMPLIANT
        assert plan_fix(evaluation.fixed_policy or {}, CTX, ALL) is None


@pytest.mark.parametrize("principal", OUT_OF_SCOPE)
def test_out_of_scope_principals_are_never_judged_and_need_no_call(principal: str) -> None:
    document = trust(principal)
    assert evaluate(document, CTX, ALL).verdict is Verdict.NOT_APPLICABLE
    assert has_selected_principal(json.dumps(document), CATALOGUE) is False


def test_a_template_naming_a_selected_service_may_render_to_it() -> None:
    template = {"Fn::Sub": "scheduler.${AWS::URLSuffix}"}
    assert service_match(template, CATALOGUE) == "template"
    assert service_match(template) is None
    evaluation = evaluate(trust(template), CTX, ALL)
    assert evaluation.verdict is Verdict.NEEDS_REVIEW
    assert ProblemCode.UNRESOLVED_VALUE in {p.code for p in evaluation.problems}


def test_require_either_counts_either_key_of_a_service_that_sends_both() -> None:
    scheduler = parse_services("scheduler")
    options = EngineOptions(require=Require.EITHER, services=scheduler)
    document = trust("scheduler.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}})
    assert evaluate(document, CTX, options).verdict is Verdict.COMPLIANT


# --- Hypothesis: the properties hold across entries -----------------------------------------------

PREFIXES = sorted({entry.arn_prefix for entry in CATALOGUE})
catalogue_services = st.sampled_from(
    [*(entry.principal for entry in CATALOGUE), "config.us-east-1.amazonaws.com", *OUT_OF_SCOPE, "lambda.amazonaws.com"]
)
pin_values = st.one_of(
    st.sampled_from(PREFIXES).map(lambda prefix: f"arn:aws:{prefix}:*:{ACCOUNT}:*"),
    st.just(ACCOUNT),
    st.just("444455556666"),
    st.just("*"),
)
catalogue_conditions = st.dictionaries(
    st.sampled_from(["StringEquals", "ArnLike", "ArnEquals", "StringLike", "ArnLikeIfExists"]),
    st.dictionaries(st.sampled_from(["aws:SourceAccount", "aws:SourceArn"]), one_or_many(pin_values, 2), max_size=2),
    max_size=3,
)
catalogue_statements = shuffled(
    st.fixed_dictionaries(
        {
            "Effect": st.just("Allow"),
            "Principal": shuffled(
                st.fixed_dictionaries(
                    {"Service": one_or_many(catalogue_services, 4)},
                    optional={"AWS": st.just(f"arn:aws:iam::{ACCOUNT}:root")},
                )
            ),
            "Action": st.sampled_from(["sts:AssumeRole", ["sts:AssumeRole", "sts:TagSession"]]),
        },
        optional={
            "Sid": st.sampled_from(["Trust", "StepFunctionsTrust", "EventBridgeSchedulerTrust"]),
            "Condition": catalogue_conditions,
        },
    )
)
catalogue_policies = st.fixed_dictionaries(
    {"Version": st.just("2012-10-17"), "Statement": st.lists(catalogue_statements, min_size=1, max_size=3)}
)
selections = st.one_of(
    st.just(CATALOGUE), st.lists(st.sampled_from(CATALOGUE), min_size=1, max_size=4, unique=True).map(tuple)
)
catalogue_options = st.builds(EngineOptions, require=st.sampled_from(list(Require)), services=selections)


def service_pairs(document: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for statement in statement_list(document):
        for kind, value in statement["Principal"].items():
            pairs.extend((kind, json.dumps(item)) for item in (value if isinstance(value, list) else [value]))
    return sorted(pairs)


@PROPERTY_SETTINGS
@given(policy=catalogue_policies, options=catalogue_options)
def test_across_entries_a_fix_is_compliant_idempotent_and_keeps_every_principal(
    policy: dict[str, Any], options: EngineOptions
) -> None:
    fixed = plan_fix(policy, CTX, options)
    if fixed is None:
        return
    # Then the fix is compliant, fixing again changes nothing, and not one principal was added or lost
    again = evaluate(fixed, CTX, options)
    assert again.verdict is Verdict.COMPLIANT, again.problems
    assert plan_fix(fixed, CTX, options) is None
    assert service_pairs(fixed) == service_pairs(policy)


@PROPERTY_SETTINGS
@given(policy=catalogue_policies, options=catalogue_options)
def test_across_entries_a_fix_only_adds_conditions_and_pins_each_service_with_its_own_prefix(
    policy: dict[str, Any], options: EngineOptions
) -> None:
    fixed = plan_fix(policy, CTX, options)
    if fixed is None:
        return
    originals = iter(statement_list(policy))
    old_sids = {o["Sid"] for o in statement_list(policy) if "Sid" in o}
    source: dict[str, Any] = {}
    for statement in statement_list(fixed):
        added = "Sid" in statement and statement["Sid"] not in old_sids
        # The fix keeps every statement in place and writes each split copy right after its source
        source = source if added else next(originals)
        for operator, block in source.get("Condition", {}).items():
            for key, value in block.items():
                assert statement["Condition"][operator][key] == value  # only narrows: nothing removed
        if not added:
            continue
        # A statement the fix wrote trusts one selected service, pinned with that service's own ARN
        services = statement["Principal"]["Service"]
        named = {
            entry_for_principal(s, options.services) for s in (services if isinstance(services, list) else [services])
        }
        assert len(named) == 1 and None not in named
        (entry,) = named
        assert entry is not None
        arns = [v for block in statement["Condition"].values() for k, v in block.items() if k == "aws:SourceArn"]
        assert f"arn:aws:{entry.arn_prefix}:*:{ACCOUNT}:*" in arns


@PROPERTY_SETTINGS
@given(entry=st.sampled_from(CATALOGUE), other=st.sampled_from(PREFIXES), require=st.sampled_from(list(Require)))
def test_for_every_entry_only_its_own_prefix_or_a_wildcard_pins(entry: Entry, other: str, require: Require) -> None:
    options = EngineOptions(require=require, services=CATALOGUE)
    arn_only = {"ArnLike": {"aws:SourceArn": f"arn:aws:{other}:*:{ACCOUNT}:*"}}
    verdict = evaluate(trust(entry.principal, arn_only), CTX, options).verdict
    expected = Verdict.COMPLIANT if other == entry.arn_prefix else Verdict.NON_COMPLIANT
    if other == entry.arn_prefix and require is Require.BOTH and entry.sends_source_account:
        expected = Verdict.NON_COMPLIANT  # the account key is still missing
    assert verdict is expected
