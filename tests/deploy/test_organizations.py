"""The organization's templates from `make package`: the member side (member-account.json) and the central side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from tests.deploy.stack import Stack
from tests.deploy.support import POLICY_FILE, Packaged, PolicyEvaluator, cfn_lint, load_json

pytestmark = pytest.mark.slow


def member(packaged: Packaged) -> dict[str, Any]:
    return load_json(packaged.dist / "member-account.json")


def _lint(path: Path) -> list[dict[str, Any]]:
    return [m for m in cfn_lint(path)[0] if m["Level"] == "Error"]


# --- member side ----------------------------------------------------------------------------------------


def test_the_member_template_is_clean_under_cfn_lint(packaged: Packaged) -> None:
    assert _lint(packaged.dist / "member-account.json") == []


def test_the_member_role_trusts_only_the_central_functions_roles(packaged: Packaged) -> None:
    role = member(packaged)["Resources"]["MemberRole"]["Properties"]
    assert role["RoleName"] == {"Ref": "MemberRoleName"}
    assert member(packaged)["Parameters"]["MemberRoleName"]["Default"] == "deputy-guard-member"
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "DeputyGuardRoleArns"}}
    assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"
    assert member(packaged)["Parameters"]["DeputyGuardRoleArns"]["Type"] == "CommaDelimitedList"


def test_the_member_role_has_the_bots_iam_permissions_and_denies(packaged: Packaged) -> None:
    (policy,) = member(packaged)["Resources"]["MemberRole"]["Properties"]["Policies"]
    granted = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    bot = {s["Sid"]: s for s in load_json(POLICY_FILE)["Statement"]}
    iam_only = {
        sid
        for sid, s in bot.items()
        if all(a.startswith("iam:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    }
    # Every IAM statement of the bot's policy, with the same effect, actions and conditions, and nothing else
    assert set(granted) == iam_only
    for sid in iam_only:
        assert {k: v for k, v in granted[sid].items() if k != "Resource"} == {
            k: v for k, v in bot[sid].items() if k != "Resource"
        }, sid
    # The whole-account listing included (scans of a member read its roles and tags 1,000 at a time)
    assert granted["ListRoleDetails"]["Action"] == "iam:GetAccountAuthorizationDetails"
    # The resources are the member account's own
    assert granted["ReadRoles"]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
    # And the bot never rewrites the role it acts through, nor the forwarder
    assert granted["NeverTouchOwnRoles"]["Effect"] == "Deny"
    assert granted["NeverTouchOwnRoles"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${MemberRoleName}"},
        {"Fn::GetAtt": ["ForwarderRole", "Arn"]},
    ]


def test_the_member_forwards_the_apps_iam_pattern_to_the_central_bus(packaged: Packaged) -> None:
    template = member(packaged)
    rule = template["Resources"]["ForwardIamEvents"]["Properties"]
    assert rule["EventPattern"] == app_module.IAM_EVENT_PATTERN
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "CentralEventBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    # in us-east-1, where IAM's events are
    assertion = template["Rules"]["UsEast1Only"]["Assertions"][0]["Assert"]
    assert assertion == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}


def test_the_forwarder_may_only_put_events_on_the_central_bus(packaged: Packaged) -> None:
    role = member(packaged)["Resources"]["ForwarderRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    central = "arn:aws:events:us-east-1:111122223333:event-bus/deputy-guard"
    evaluator = PolicyEvaluator(
        json.loads(json.dumps(policy["PolicyDocument"]).replace('{"Ref": "CentralEventBusArn"}', f'"{central}"'))
    )
    assert evaluator.allowed_actions() == {"events:PutEvents"}
    assert evaluator.allowed("events:PutEvents", central)
    assert not evaluator.allowed("events:PutEvents", "arn:aws:events:us-east-1:111122223333:event-bus/default")


def test_the_central_account_does_not_forward_to_itself(packaged: Packaged) -> None:
    template = member(packaged)
    assert template["Resources"]["ForwardIamEvents"]["Condition"] == "ForwardsEvents"
    assert "AWS::AccountId" in json.dumps(template["Conditions"]["ForwardsEvents"])


# --- central side ---------------------------------------------------------------------------------------


def test_the_bus_accepts_events_only_from_the_organization(packaged: Packaged) -> None:
    resources = packaged.template["Resources"]
    assert resources["DeputyGuardBus"]["Properties"]["Name"] == "deputy-guard"
    statement = resources["DeputyGuardBusPolicy"]["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


def test_on_iam_event_also_listens_on_the_organization_bus(packaged: Packaged) -> None:
    resources = packaged.template["Resources"]
    rule = resources["OrgIamEventRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "DeputyGuardBus"}
    assert rule["EventPattern"] == app_module.IAM_EVENT_PATTERN
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": ["OnIamEvent", "Arn"]}]
    permission = resources["OrgIamEventPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "OnIamEvent"}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["OrgIamEventRule", "Arn"]}


def test_no_organization_no_bus(packaged: Packaged) -> None:
    stack = Stack(packaged)  # OrganizationId empty by default
    for logical in ("DeputyGuardBus", "DeputyGuardBusPolicy", "OrgIamEventRule", "OrgIamEventPermission"):
        assert not stack.created(logical), logical
    assert Stack(packaged, OrganizationId="o-a1b2c3d4e5").created("OrgIamEventRule")


def test_scan_account_reads_the_work_queue_one_account_at_a_time_with_bounded_concurrency(packaged: Packaged) -> None:
    resources = packaged.template["Resources"]
    function = resources["ScanAccount"]["Properties"]
    (source,) = function["Events"].values()
    properties = source["Properties"]
    assert source["Type"] == "SQS"
    assert "${WorkQueue.QueueName}" in properties["Queue"]["Fn::Sub"]
    assert properties["BatchSize"] == 1
    assert properties["ScalingConfig"]["MaximumConcurrency"] == app_module.ACCOUNT_SWEEP_CONCURRENCY
    queue = resources["WorkQueue"]["Properties"]
    # Lambda's SQS event source wants the visibility timeout at six times the function's timeout
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetters", "Arn"]},
        "maxReceiveCount": 3,
    }
    assert function["Timeout"] == 900


def test_every_function_knows_the_work_queue(packaged: Packaged) -> None:
    for name in ("OnIamEvent", "Sweep", "APIHandler", "ScanAccount"):
        variables = packaged.template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["DEPUTY_GUARD_WORK_QUEUE_URL"] == {"Ref": "WorkQueue"}, name
