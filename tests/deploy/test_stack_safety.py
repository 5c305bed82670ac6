"""The stack's own defences: the audit table's resource policy, the deny on the stack's own roles, a clean reinstall.

The table's resource policy is judged by the same small evaluator as the bot's policy, after the template's
intrinsics are resolved for one stack (tests/deploy/stack.py): who may write items, who may change the policy.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import pytest

from tests.deploy.stack import ACCOUNT, DEPLOYER, FUNCTIONS, REGION, ROLES, STACK, Stack, names, physical
from tests.deploy.support import POLICY_FILE, Packaged, PolicyEvaluator, load_json

pytestmark = pytest.mark.slow

ITEM_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}
POWER_USER = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PowerUserAccess_0a1b2c3d"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def bot_roles() -> list[str]:
    return [names()[f"{role}.Arn"] for role in ROLES]


def table_policy(packaged: Packaged) -> PolicyEvaluator:
    """The table's resource policy, resolved, with an Allow for everything beside it (an admin's identity policy)."""
    table = packaged.template["Resources"]["Table"]["Properties"]
    document = Stack(packaged).concrete(table["ResourcePolicy"]["PolicyDocument"])
    everything = {"Sid": "IdentityPolicyAllowsAll", "Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    return PolicyEvaluator({**document, "Statement": [*document["Statement"], everything]})


TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical('Table')}"


# --- the audit table: only the bot and the deployer write items -----------------------------------------


@pytest.mark.parametrize("action", sorted(ITEM_WRITES))
def test_a_power_user_cannot_write_audit_records(packaged: Packaged, action: str) -> None:
    # Given a principal whose identity policy allows every DynamoDB call (PowerUserAccess does)
    policy = table_policy(packaged)
    # Then the table's resource policy still refuses it every way of writing an item
    assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": POWER_USER})
    assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": ROOT})
    assert not policy.allowed(action, TABLE_ARN, {})  # a service or anonymous caller: no principal ARN at all


@pytest.mark.parametrize("action", sorted(ITEM_WRITES))
def test_the_bots_roles_and_the_deployer_write_items(packaged: Packaged, action: str) -> None:
    policy = table_policy(packaged)
    for principal in [*bot_roles(), DEPLOYER]:
        assert policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": principal}), principal


def test_the_deployer_may_be_a_pattern(packaged: Packaged) -> None:
    # An IAM Identity Center role's name carries a random suffix: a wildcard covers the permission set
    pattern = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PlatformAdmin_*"
    document = Stack(packaged, DeployerPrincipalArn=pattern).concrete(
        packaged.template["Resources"]["Table"]["Properties"]["ResourcePolicy"]["PolicyDocument"]
    )
    everything = {"Sid": "All", "Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    policy = PolicyEvaluator({**document, "Statement": [*document["Statement"], everything]})
    assert policy.allowed("dynamodb:PutItem", TABLE_ARN, {"aws:PrincipalArn": DEPLOYER})
    assert not policy.allowed("dynamodb:PutItem", TABLE_ARN, {"aws:PrincipalArn": POWER_USER})


def test_reads_are_left_to_identity_policies(packaged: Packaged) -> None:
    policy = table_policy(packaged)
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"):
        assert policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": POWER_USER}), action


def test_only_the_deployer_or_root_changes_the_tables_policy(packaged: Packaged) -> None:
    # Else PowerUserAccess (dynamodb:*) could delete the policy, then write
    policy = table_policy(packaged)
    for action in ("dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"):
        assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": POWER_USER}), action
        for bot in bot_roles():
            assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": bot}), action
        assert policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": DEPLOYER}), action
        assert policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": ROOT}), action  # the break-glass


@cache
def _dynamodb_actions() -> set[str]:
    data = resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text(encoding="utf-8")
    return set(json.loads(data)["dynamodb"]["Actions"])


def test_the_item_writes_are_every_write_iam_knows(packaged: Packaged) -> None:
    statement = packaged.template["Resources"]["Table"]["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"][
        0
    ]
    assert set(statement["Action"]) == ITEM_WRITES
    known = _dynamodb_actions()
    assert {a.split(":")[1].lower() for a in ITEM_WRITES} <= known
    # Transactions and PartiQL statements are authorised as these actions; nothing else writes an item
    writers = {a for a in known if a.endswith("item") and not a.endswith(("getitem", "checkitem"))}
    writers |= {a for a in known if a.startswith("partiql") and a != "partiqlselect"}
    assert writers == {a.split(":")[1].lower() for a in ITEM_WRITES}


def test_the_policy_names_the_stacks_own_roles_and_the_deployer_parameter(packaged: Packaged) -> None:
    document = packaged.template["Resources"]["Table"]["Properties"]["ResourcePolicy"]["PolicyDocument"]
    writers, admins = document["Statement"]
    assert writers["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == [
        *({"Fn::GetAtt": [role, "Arn"]} for role in ROLES),
        {"Ref": "DeployerPrincipalArn"},
    ]
    assert {"Ref": "DeployerPrincipalArn"} in admins["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert all(s["Resource"] == "*" for s in document["Statement"])  # "this table": its name is generated


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (DEPLOYER, True),
        (f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PlatformAdmin_*", True),
        (f"arn:aws:iam::{ACCOUNT}:role/cfn-deployer", True),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", True),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformAdmin/alice", False),  # a session: never aws:PrincipalArn
        ("*", False),
        ("", False),
    ],
)
def test_the_deployer_parameter_takes_a_principal_arn(packaged: Packaged, value: str, accepted: bool) -> None:
    parameter = packaged.template["Parameters"]["DeployerPrincipalArn"]
    assert "Default" not in parameter  # the deployer names themselves
    assert bool(re.fullmatch(parameter["AllowedPattern"], value)) is accepted


# --- the stack's own roles ---------------------------------------------------------------------------------


def effective_policy(packaged: Packaged, role: str) -> PolicyEvaluator:
    """One role's identity policies together: its inline policy and every AWS::IAM::Policy attached to it."""
    stack = Stack(packaged)
    resources_ = packaged.template["Resources"]
    statements: list[Any] = []
    for policy in resources_[role]["Properties"]["Policies"]:
        statements += policy["PolicyDocument"]["Statement"]
    for resource in resources_.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            statements += stack.concrete(resource["Properties"]["PolicyDocument"])["Statement"]
    return PolicyEvaluator({"Version": "2012-10-17", "Statement": statements})


EXEMPT_TAGS = {"aws:TagKeys": ["deputy-guard:mode"], "aws:RequestTag/deputy-guard:mode": "exempt"}


@pytest.mark.parametrize("role", ROLES)
def test_the_stack_denies_its_roles_writes_to_its_own_roles_only(packaged: Packaged, role: str) -> None:
    policy = effective_policy(packaged, role)
    for own in bot_roles():
        assert not policy.allowed("iam:UpdateAssumeRolePolicy", own), own
        assert not policy.allowed("iam:TagRole", own, EXEMPT_TAGS), own
    # Given roles an attacker named after the bot, or after what `chalice deploy` would name it
    for name in ("deputy-guard-anything", f"{STACK}-OnIamEventRole-FAKE", "deputy-guard-prod-sweep"):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        # Then the bot may fix them like any other role
        assert policy.allowed("iam:UpdateAssumeRolePolicy", arn), name
        assert policy.allowed("iam:TagRole", arn, EXEMPT_TAGS), name


def test_every_role_carries_the_policy_file_and_the_stacks_own_roles_deny(packaged: Packaged) -> None:
    # The file's own-roles statement names what `chalice deploy` creates; the stack states its own ARNs
    expected = load_json(POLICY_FILE)
    expected["Statement"] = [s for s in expected["Statement"] if s["Sid"] != "NeverTouchOwnRoles"]
    for role in ROLES:
        properties = packaged.template["Resources"][role]["Properties"]
        assert [p["PolicyDocument"] for p in properties["Policies"]] == [expected], role
        assert "ManagedPolicyArns" not in properties, role
    deny = packaged.template["Resources"]["OwnRolesDeny"]
    assert deny["Type"] == "AWS::IAM::Policy"
    assert deny["Properties"]["Roles"] == [{"Ref": role} for role in ROLES]
    (statement,) = deny["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Sid"] == "NeverTouchOwnRoles"
    assert set(statement["Action"]) == {"iam:UpdateAssumeRolePolicy", "iam:TagRole"}
    assert statement["Resource"] == [{"Fn::GetAtt": [role, "Arn"]} for role in ROLES]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_runs_before_the_deny_is_attached(packaged: Packaged, function: str) -> None:
    assert "OwnRolesDeny" in packaged.template["Resources"][function]["DependsOn"]


# --- uninstall, then install again with the same stack name -----------------------------------------------


def test_nothing_retained_or_slow_to_free_has_a_fixed_name(packaged: Packaged) -> None:
    # A retained table named after the stack made a reinstall fail; SQS keeps a deleted queue's name for 60 s
    table = packaged.template["Resources"]["Table"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["TableName"] == {
        "Fn::If": ["HasTableName", {"Ref": "TableName"}, {"Ref": "AWS::NoValue"}]
    }
    assert Stack(packaged).concrete(table["Properties"]).get("TableName") is None
    assert "QueueName" not in packaged.template["Resources"]["FailedEvents"]["Properties"]
    for name, resource in packaged.template["Resources"].items():
        if resource.get("DeletionPolicy") == "Retain":
            # The audit trail, and the key its records are signed with (docs/deployment.md, "Remove")
            assert name in ("Table", "SigningKey"), f"{name} outlives the stack: say so in the uninstall section"


def test_the_policy_reaches_every_resource_the_stack_creates(packaged: Packaged, bot_policy: PolicyEvaluator) -> None:
    # After substituting the names CloudFormation generates, the policy's name patterns cover the stack
    values = names()
    for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
        assert bot_policy.allowed(f"dynamodb:{action}", values["Table.Arn"]), action
    topic = Stack(packaged).concrete(packaged.template["Resources"]["Topic"]["Properties"]["TopicName"])
    assert bot_policy.allowed("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}")
    assert bot_policy.allowed("sqs:SendMessage", values["FailedEvents.Arn"])
    for function in FUNCTIONS:  # CloudFormation names a function <stack>-<logical id>-<suffix>
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{values[function]}"
        assert bot_policy.allowed("logs:CreateLogStream", f"{group}:log-stream:x"), function
