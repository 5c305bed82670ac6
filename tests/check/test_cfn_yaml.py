"""CloudFormation YAML as CloudFormation reads it: short-form tags, scalars kept as text, line numbers."""

from __future__ import annotations

import pytest

from deputy_guard.iac import cfnyaml

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: 2012-10-17
        Statement:
          - Effect: Allow
            Principal:
              Service: !Sub states.${AWS::Region}.amazonaws.com
            Action: sts:AssumeRole
            Condition:
              StringEquals:
                aws:SourceAccount: 012345670123
"""


def test_unquoted_version_is_the_string_cloudformation_sees_not_a_date() -> None:
    loaded = cfnyaml.load(TEMPLATE)
    document = loaded.data["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]
    assert document["Version"] == "2012-10-17"
    # An account id with a leading zero is not read as an octal number
    assert document["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == "012345670123"


def test_the_line_of_each_key_is_kept() -> None:
    loaded = cfnyaml.load(TEMPLATE)
    properties = loaded.data["Resources"]["Role"]["Properties"]
    assert loaded.key_line(properties, "AssumeRolePolicyDocument") == 6
    assert loaded.key_line(loaded.data["Resources"], "Role") == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!Ref AWS::AccountId", {"Ref": "AWS::AccountId"}),
        ("!Sub states.${AWS::Region}.amazonaws.com", {"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}),
        ("!GetAtt Workflow.Arn", {"Fn::GetAtt": ["Workflow", "Arn"]}),
        ("!GetAtt [Workflow, Arn]", {"Fn::GetAtt": ["Workflow", "Arn"]}),
        ('!Join [".", [states, !Ref "AWS::URLSuffix"]]', {"Fn::Join": [".", ["states", {"Ref": "AWS::URLSuffix"}]]}),
        ("!If [HasPartner, a, !Ref AWS::NoValue]", {"Fn::If": ["HasPartner", "a", {"Ref": "AWS::NoValue"}]}),
        ("!Select [0, !Split [',', 'a,b']]", {"Fn::Select": ["0", {"Fn::Split": [",", "a,b"]}]}),
        ("!ImportValue shared-account", {"Fn::ImportValue": "shared-account"}),
        ("!FindInMap [Accounts, !Ref AWS::Region, Id]", {"Fn::FindInMap": ["Accounts", {"Ref": "AWS::Region"}, "Id"]}),
        ("!Base64 text", {"Fn::Base64": "text"}),
        ("!Cidr [10.0.0.0/16, 4, 8]", {"Fn::Cidr": ["10.0.0.0/16", "4", "8"]}),
        ("!GetAZs ''", {"Fn::GetAZs": ""}),
        ("!Equals [a, b]", {"Fn::Equals": ["a", "b"]}),
        ("!Condition IsProd", {"Condition": "IsProd"}),
        (
            "!Sub\n  - arn:${AWS::Partition}:states:${R}\n  - {R: !Ref AWS::Region}",
            {"Fn::Sub": ["arn:${AWS::Partition}:states:${R}", {"R": {"Ref": "AWS::Region"}}]},
        ),
    ],
)
def test_short_form_tags_become_the_long_form(text: str, expected: object) -> None:
    assert cfnyaml.load(f"value: {text}\n").data["value"] == expected


def test_a_repeated_key_is_remembered() -> None:
    loaded = cfnyaml.load("a:\n  b: 1\n  b: 2\n")
    assert loaded.has_duplicates(loaded.data["a"])
    assert not loaded.has_duplicates(loaded.data)


def test_text_that_is_not_yaml_is_a_yaml_error() -> None:
    with pytest.raises(cfnyaml.YamlError):
        cfnyaml.load("a: [unclosed\n")
