"""chalicelib.domain.policy: decoding, validation, the normalised view, matching helpers and rendering."""

from __future__ import annotations

import json
from collections import OrderedDict
from types import MappingProxyType
from urllib.parse import quote

import pytest

from chalicelib.domain.policy import (
    PolicyError,
    has_states_principal,
    iam_glob_match,
    normalise_policy,
    parse_policy,
    render_diff,
    scalar_text,
    service_kind,
    to_compact_json,
    to_pretty_json,
)

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
PRETTY = (
    '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {\n      "Effect": "Allow",\n'
    '      "Principal": {\n        "Service": "states.amazonaws.com"\n      },\n'
    '      "Action": "sts:AssumeRole"\n    }\n  ]\n}'
)


# --- parse_policy: accepted forms -----------------------------------------------------------------


def test_parse_returns_a_deep_copy_of_a_dict() -> None:
    # Given a policy dict
    # When it is parsed
    parsed = parse_policy(POLICY)
    # Then it is equal but shares nothing with the caller's object
    assert parsed == POLICY
    parsed["Statement"][0]["Principal"]["Service"] = "changed"
    assert POLICY["Statement"][0]["Principal"]["Service"] == "states.amazonaws.com"


def test_parse_accepts_a_compact_json_string() -> None:
    assert parse_policy(json.dumps(POLICY, separators=(",", ":"))) == POLICY


def test_parse_accepts_a_pretty_json_string_with_newlines() -> None:
    # Given the pretty string CloudTrail carries in requestParameters
    # When it is parsed
    # Then it is the same document
    assert parse_policy(PRETTY) == POLICY


def test_parse_accepts_the_url_encoded_string_iam_returns() -> None:
    # Given the URL-encoded form GetRole and ListRoles return ("%7B%0A%20%20%22Version...")
    encoded = quote(PRETTY, safe="")
    assert encoded.startswith("%7B%0A%20%20%22Version%22")
    # When it is parsed
    # Then it decodes to the same document
    assert parse_policy(encoded) == POLICY


def test_parse_keeps_key_order_and_unrelated_fields() -> None:
    # Given a CDK-ordered document with an Id and an unknown statement field
    document = {"Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "X-Note": [1, None]}], "Id": "T"}
    # When it is parsed and rendered
    # Then nothing is reordered or dropped
    assert to_compact_json(parse_policy(document)) == to_compact_json(document)


def test_parse_accepts_a_read_only_mapping_and_returns_plain_dicts() -> None:
    # Given a policy held in read-only and ordered mappings
    document = MappingProxyType({"Statement": OrderedDict(Effect="Deny", Action=("sts:AssumeRole",))})
    # When it is parsed
    parsed = parse_policy(document)
    # Then the copy holds plain JSON types
    assert parsed == {"Statement": {"Effect": "Deny", "Action": ["sts:AssumeRole"]}}
    assert type(parsed["Statement"]) is dict


def test_parse_accepts_a_single_statement_object() -> None:
    parsed = parse_policy({"Statement": POLICY["Statement"][0]})
    assert isinstance(parsed["Statement"], dict)


def test_parse_accepts_template_intrinsics_in_principals_and_conditions() -> None:
    # Given CloudFormation intrinsics where IAM expects strings
    document = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": [{"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}]},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            }
        ]
    }
    # When parsed
    # Then they are kept, for the engine to report as unresolved
    assert parse_policy(document) == document


# --- parse_policy: rejected forms -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not JSON"),
        ("%7B%22Version", "not JSON (nor URL-encoded JSON)"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ('"text"', "must be a JSON object, not a string"),
        ('{"x": NaN}', "NaN is not a JSON value"),
        ({"Version": "2012-10-17"}, "the policy has no Statement"),
        ({"Statement": "Allow"}, "Statement must be an object or a list of objects, not a string"),
        ({"Statement": [POLICY["Statement"][0], 7]}, "statement 1: must be an object, not a number"),
        ({"Statement": [{"Action": "sts:AssumeRole"}]}, "statement 0: Effect is missing"),
        ({"Statement": [{"Effect": True}]}, "statement 0: Effect must be a string, not a boolean"),
        ({"Statement": [{"Effect": "Allow", "Sid": 3}]}, "statement 0: Sid must be a string"),
        ({"Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", 1]}]}, "statement 0: Action must be"),
        ({"Statement": [{"Effect": "Allow", "NotAction": {"a": 1}}]}, "statement 0: NotAction must be"),
        ({"Statement": [{"Effect": "Allow", "Principal": "states.amazonaws.com"}]}, 'Principal must be "*"'),
        ({"Statement": [{"Effect": "Allow", "Principal": ["*"]}]}, "statement 0: Principal must be"),
        ({"Statement": [{"Effect": "Allow", "Principal": {"Service": 5}}]}, "statement 0: Principal.Service must"),
        ({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": [None]}}]}, "statement 0: NotPrincipal.AWS"),
        ({"Statement": [{"Effect": "Allow", "Condition": []}]}, "statement 0: Condition must be an object"),
        ({"Statement": [{"Effect": "Allow", "Condition": {"StringEquals": "x"}}]}, "Condition.StringEquals must"),
        (
            {"Statement": [{"Effect": "Allow", "Condition": {"Bool": {"aws:SecureTransport": None}}}]},
            "statement 0: Condition.Bool.aws:SecureTransport must be",
        ),
        ({"Statement": [], "When": {1, 2}}, "not JSON data"),
        ({"Statement": [], 1: "x"}, "object key 1 is not a string"),
        ({"Statement": [], "x": float("inf")}, "NaN and Infinity"),
        (42, "must be a JSON object or string, not int"),
        (None, "must be a JSON object or string, not NoneType"),
    ],
)
def test_parse_rejects_what_is_not_a_trust_policy_with_a_one_line_message(document: object, message: str) -> None:
    # Given something that is not a trust policy
    # When it is parsed
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)  # type: ignore[arg-type]
    # Then the error says what is wrong, on one line
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parse_error_names_the_statement_index() -> None:
    document = {"Statement": [POLICY["Statement"][0], POLICY["Statement"][0], {"Effect": "Allow", "Action": 3}]}
    with pytest.raises(PolicyError, match=r"^statement 2: Action must be a string or a list of strings"):
        parse_policy(document)


def test_parse_rejects_absurdly_deep_nesting_as_a_policy_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy('{"Statement": [], "x": ' + deep + "}")


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


# --- normalised view ------------------------------------------------------------------------------


def test_normalise_turns_strings_into_tuples_and_folds_condition_names() -> None:
    # Given a statement mixing strings, lists and odd case
    document = parse_policy(
        {
            "Statement": {
                "Effect": "allow",
                "Principal": {"Service": "states.amazonaws.com", "AWS": ["a", "b"]},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEqualsIfExists": {"AWS:SourceAccount": ["1", "2"]}},
            }
        }
    )
    # When it is normalised
    (statement,) = normalise_policy(document)
    # Then values are tuples and names are folded for lookup, keeping the written spelling
    assert statement.allow is True
    assert statement.actions == ("sts:AssumeRole",)
    assert statement.principals == (("service", ("states.amazonaws.com",)), ("aws", ("a", "b")))
    (entry,) = statement.conditions
    assert (entry.operator_folded, entry.key_folded, entry.values) == (
        "stringequalsifexists",
        "aws:sourceaccount",
        ("1", "2"),
    )
    assert (entry.operator, entry.key) == ("StringEqualsIfExists", "AWS:SourceAccount")


def test_normalise_does_not_change_the_document() -> None:
    document = parse_policy(POLICY)
    normalise_policy(document)
    assert document == POLICY


# --- helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("sts:AssumeRole", True),
        ("STS:ASSUMEROLE", True),
        ("sts:*", True),
        ("*", True),
        ("sts:Assume*", True),
        ("sts:Assum?Role", True),
        ("sts:AssumeRole?", False),
        ("sts:AssumeRoleWithSAML", False),
        ("iam:*", False),
    ],
)
def test_iam_glob_match_follows_iam_action_wildcards(pattern: str, matches: bool) -> None:
    assert iam_glob_match(pattern, "sts:AssumeRole", ignore_case=True) is matches


def test_iam_glob_match_can_be_case_sensitive() -> None:
    assert iam_glob_match("st*", "states", ignore_case=False)
    assert not iam_glob_match("ST*", "states", ignore_case=False)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("states.amazonaws.com", "states"),
        ("STATES.AMAZONAWS.COM", "states"),
        ("states.eu-west-1.amazonaws.com", "states"),
        ("states.cn-north-1.amazonaws.com.cn", "states"),
        ("states.amazonaws.com.cn", "states"),
        ("lambda.amazonaws.com", "other"),
        ("states.amazonaws.com.evil.example", "other"),
        ("arn:aws:iam::111122223333:root", "other"),
        ({"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}, "template"),
        ({"Fn::Sub": ["states.${Region}.${AWS::URLSuffix}", {"Region": "eu-west-1"}]}, "template"),
        ({"Fn::Join": ["", ["states.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}, "template"),
        ({"Ref": "TrustedService"}, "template"),
        ("${ServicePrincipal}", "template"),
        ({"Fn::Sub": "lambda.${AWS::URLSuffix}"}, "other"),
    ],
)
def test_service_kind_recognises_step_functions_in_every_spelling(value: object, kind: str) -> None:
    assert service_kind(value) == kind


@pytest.mark.parametrize(
    ("value", "text"),
    [("111122223333", "111122223333"), (111122223333, "111122223333"), (True, "true"), ({"Ref": "x"}, None)],
)
def test_scalar_text_compares_numbers_by_their_decimal_text(value: object, text: str | None) -> None:
    assert scalar_text(value) == text


# --- has_states_principal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        {"Principal": {"Service": "states.amazonaws.com"}},
        {"Principal": {"Service": ["lambda.amazonaws.com", "states.us-east-1.amazonaws.com"]}},
        {"Principal": {"Service": {"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}}},
        {"Principal": "*"},
        {"Principal": {"AWS": "*"}},
        {"Principal": {"AWS": ["arn:aws:iam::111122223333:root", "*"]}},
        {"NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}},
    ],
)
def test_has_states_principal_is_true_for_anything_that_includes_step_functions(principal: dict[str, object]) -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", **principal}]}
    assert has_states_principal(document) is True


@pytest.mark.parametrize(
    "principal",
    [
        {"Principal": {"Service": "lambda.amazonaws.com"}},
        {"Principal": {"AWS": "arn:aws:iam::111122223333:root", "Federated": "cognito-identity.amazonaws.com"}},
        {"Principal": {"Service": {"Fn::Sub": "ecs-tasks.${AWS::URLSuffix}"}}},
    ],
)
def test_has_states_principal_is_false_when_step_functions_cannot_be_meant(principal: dict[str, object]) -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", **principal}]}
    assert has_states_principal(document) is False


def test_has_states_principal_reads_url_encoded_documents() -> None:
    assert has_states_principal(quote(json.dumps(POLICY), safe="")) is True


@pytest.mark.parametrize("junk", [None, 3, [], "", "{", "%7B", {"Statement": 1}, {"no": "statement"}, b"{}"])
def test_has_states_principal_never_raises_and_says_true_for_junk(junk: object) -> None:
    # Given input that cannot be read as a policy
    # When asked, it answers True so that the caller re-reads the role and lets evaluate decide
    assert has_states_principal(junk) is True


# --- rendering ------------------------------------------------------------------------------------


def test_compact_json_has_no_whitespace_and_keeps_non_ascii() -> None:
    document = {"Statement": [], "Id": "für"}
    assert to_compact_json(document) == '{"Statement":[],"Id":"für"}'


def test_pretty_json_indents_by_two_in_document_order() -> None:
    assert to_pretty_json({"b": 1, "a": [2]}) == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}'


def test_render_diff_is_a_deterministic_unified_diff_of_the_pretty_json() -> None:
    # Given a document and a changed copy
    after = json.loads(json.dumps(POLICY))
    after["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    # When diffed twice
    first = render_diff(POLICY, after, "current", "fixed")
    # Then the diff names both sides, shows the added lines, and is the same each time
    assert first.startswith("--- current\n+++ fixed\n@@ ")
    assert '+      "Condition": {\n' in first
    assert '-      "Action": "sts:AssumeRole"\n' in first
    assert first == render_diff(POLICY, after, "current", "fixed")


def test_render_diff_of_equal_documents_is_empty() -> None:
    assert render_diff(POLICY, json.loads(json.dumps(POLICY))) == ""


@pytest.mark.parametrize(
    "document",
    [
        # the first Principal names Step Functions; json keeps only the second
        '{"Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},'
        ' "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}',
        {"Statement": [{"Effect": "Allow", "principal": {"Service": "states.amazonaws.com"}, "Action": "sts:X"}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:\ud800"}]},
    ],
    ids=["repeated-key", "refused-by-iam", "lone-surrogate"],
)
def test_has_states_principal_is_true_for_documents_the_engine_will_not_judge(document: object) -> None:
    # Given a document whose principals cannot be read with certainty
    # Then the caller is told to re-read the role, so that evaluate sends it for review
    assert has_states_principal(document) is True
