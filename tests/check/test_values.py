"""CloudFormation values for one deployment: what pins the deploying account, and what cannot be known."""

from __future__ import annotations

from typing import Any

import pytest

from deputy_guard.iac import jsonpos
from deputy_guard.iac.values import ACCOUNT_PLACEHOLDER, REGION_PLACEHOLDER, Deployment, resolve

OWN = "111122223333"
DEPLOY = Deployment(OWN, "aws", "eu-west-1")
TEMPLATE: dict[str, Any] = {
    "Parameters": {"PartnerAccount": {"Type": "String"}},
    "Mappings": {"Accounts": {"prod": {"Id": "999988887777"}}},
    "Resources": {
        "Workflow": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"StateMachineName": "orders"}},
        "Unnamed": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}},
        "SamWorkflow": {"Type": "AWS::Serverless::StateMachine", "Properties": {"Name": "ship"}},
        "Queue": {"Type": "AWS::SQS::Queue"},
    },
}


def value(intrinsic: Any, deployment: Deployment = DEPLOY) -> Any:
    return resolve(TEMPLATE, {"v": intrinsic}, deployment).document["v"]


@pytest.mark.parametrize(
    ("intrinsic", "expected"),
    [
        ({"Ref": "AWS::AccountId"}, OWN),
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "AWS::Region"}, "eu-west-1"),
        ({"Fn::Sub": "states.${AWS::URLSuffix}"}, "states.amazonaws.com"),
        (
            {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:*"},
            f"arn:aws:states:eu-west-1:{OWN}:*",
        ),
        (
            {"Fn::Sub": ["arn:${P}:states:*:${A}:*", {"P": {"Ref": "AWS::Partition"}, "A": {"Ref": "AWS::AccountId"}}]},
            f"arn:aws:states:*:{OWN}:*",
        ),
        ({"Fn::Sub": "${!Literal}"}, "${Literal}"),
        (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]},
            f"arn:aws:iam::{OWN}:root",
        ),
        ({"Ref": "Workflow"}, f"arn:aws:states:eu-west-1:{OWN}:stateMachine:orders"),
        ({"Fn::GetAtt": ["Workflow", "Arn"]}, f"arn:aws:states:eu-west-1:{OWN}:stateMachine:orders"),
        ({"Ref": "Unnamed"}, f"arn:aws:states:eu-west-1:{OWN}:stateMachine:Unnamed"),
        ({"Ref": "SamWorkflow"}, f"arn:aws:states:eu-west-1:{OWN}:stateMachine:ship"),
        ({"Fn::Sub": "${Workflow.Arn}"}, f"arn:aws:states:eu-west-1:{OWN}:stateMachine:orders"),
        ({"Fn::GetAtt": ["Workflow", "Name"]}, "orders"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, f"arn:aws:sqs:eu-west-1:{OWN}:Queue"),
        ({"Fn::FindInMap": ["Accounts", "prod", "Id"]}, "999988887777"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
        # An unknown piece in the resource part of an ARN does not change the account it pins
        (
            {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${PartnerAccount}"},
            f"arn:aws:states:eu-west-1:{OWN}:stateMachine:*",
        ),
    ],
)
def test_known_values_resolve_for_the_deployment(intrinsic: Any, expected: str) -> None:
    assert value(intrinsic) == expected


def test_the_china_partition_has_its_own_url_suffix() -> None:
    assert value({"Fn::Sub": "states.${AWS::URLSuffix}"}, Deployment(OWN, "aws-cn")) == "states.amazonaws.com.cn"


def test_without_a_region_a_regional_principal_still_names_step_functions() -> None:
    assert value({"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}, Deployment(ACCOUNT_PLACEHOLDER)) == (
        f"states.{REGION_PLACEHOLDER}.amazonaws.com"
    )


@pytest.mark.parametrize(
    ("intrinsic", "reason"),
    [
        ({"Ref": "PartnerAccount"}, "template parameter"),
        ({"Fn::ImportValue": "shared-account"}, "export"),
        ({"Fn::If": ["IsProd", "a", "b"]}, "condition"),
        ({"Ref": "Queue"}, "physical id"),
        ({"Fn::Sub": "arn:aws:states:*:${PartnerAccount}:*"}, "template parameter"),
        ({"Fn::FindInMap": ["Accounts", {"Ref": "AWS::Region"}, "Id"]}, "Fn::FindInMap"),
        ({"Ref": "AWS::StackName"}, "deploy time"),
    ],
)
def test_unknown_values_stay_as_written_and_say_why(intrinsic: Any, reason: str) -> None:
    # Given a condition value the check cannot know
    resolution = resolve(TEMPLATE, {"Statement": [{"Condition": {"StringEquals": {"k": intrinsic}}}]}, DEPLOY)
    # Then the engine sees the intrinsic as written, and the reason is kept
    assert resolution.document["Statement"][0]["Condition"]["StringEquals"]["k"] == intrinsic
    (unresolved,) = resolution.unresolved
    assert unresolved.engine_sees_it
    assert reason in unresolved.reason


def test_an_unknown_condition_block_gets_a_stand_in_the_display_maps_back() -> None:
    written = {"Fn::If": ["HasPartner", {"StringEquals": {"aws:SourceAccount": "1"}}, {"Ref": "AWS::NoValue"}]}
    resolution = resolve(TEMPLATE, {"Statement": [{"Condition": written}]}, DEPLOY)
    (unresolved,) = resolution.unresolved
    assert not unresolved.engine_sees_it
    (operator,) = resolution.document["Statement"][0]["Condition"].values()
    (stand_in,) = operator
    assert resolution.display[stand_in] == written


def test_no_value_removes_the_key() -> None:
    assert resolve(TEMPLATE, {"Sid": {"Ref": "AWS::NoValue"}, "a": 1}, DEPLOY).document == {"a": 1}


def test_json_positions_give_the_line_of_a_keys_value_and_remember_duplicates() -> None:
    loaded = jsonpos.load(
        '{\n "Resources": {\n  "Role": {\n   "Properties": {"AssumeRolePolicyDocument": {}}\n  }\n }\n}'
    )
    properties = loaded.data["Resources"]["Role"]["Properties"]
    assert loaded.key_line(properties, "AssumeRolePolicyDocument") == 4
    assert loaded.key_line(loaded.data["Resources"], "Role") == 3
    repeated = jsonpos.load('{"a": {"b": 1, "b": 2}}')
    assert repeated.has_duplicates(repeated.data["a"])
    assert not repeated.has_duplicates(repeated.data)
