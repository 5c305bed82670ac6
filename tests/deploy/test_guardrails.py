"""Nobody in the central account borrows the bot's hands: the packaged stack's table, key, code signing and SCP.

Policies are judged by the small evaluator of tests/deploy/support.py after the template's intrinsics are resolved
for one stack (tests/deploy/stack.py). The guardrail SCP is checked against the resources the packaged template
holds, enumerated here independently of deploy/guardrails.py.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest

from tests.deploy.stack import ACCOUNT, DEPLOYER, REGION, ROLES, STACK, Stack, names, physical
from tests.deploy.support import PROJECT, Packaged, PolicyEvaluator, bundle

pytestmark = pytest.mark.slow

POWER_USER = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PowerUserAccess_0a1b2c3d"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical('Table')}"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


@cache
def guardrails() -> Any:
    """deploy/guardrails.py as a module (it is a script, not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("deputy_guard_guardrails", PROJECT / "deploy" / "guardrails.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bot_roles() -> list[str]:
    return [names()[f"{role}.Arn"] for role in ROLES]


def resource_policy(packaged: Packaged, document: dict[str, Any], **parameters: str) -> PolicyEvaluator:
    """A resolved resource policy, with an Allow for everything beside it (an admin's identity policy)."""
    resolved = Stack(packaged, **parameters).concrete(document)
    everything = {"Sid": "IdentityPolicyAllowsAll", "Effect": "Allow", "Action": "*", "Resource": "*"}
    return PolicyEvaluator({**resolved, "Statement": [*resolved["Statement"], everything]})


# --- the table is part of the trust ------------------------------------------------------------------------


def test_the_table_has_deletion_protection(packaged: Packaged) -> None:
    assert packaged.template["Resources"]["Table"]["Properties"]["DeletionProtectionEnabled"] is True


@pytest.mark.parametrize(
    "action",
    ["dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"],
)
def test_only_the_deployer_deletes_or_changes_the_table(packaged: Packaged, action: str) -> None:
    # Given a power user (dynamodb:* in their identity policy) and the bot's own roles
    table = packaged.template["Resources"]["Table"]["Properties"]
    policy = resource_policy(packaged, table["ResourcePolicy"]["PolicyDocument"])
    # Then the table's policy refuses them the action, and lets the deployer do it
    assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": POWER_USER})
    for bot in bot_roles():
        assert not policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": bot}), bot
    assert policy.allowed(action, TABLE_ARN, {"aws:PrincipalArn": DEPLOYER})


# --- the signing key ------------------------------------------------------------------------------------------


def key_policy(packaged: Packaged) -> PolicyEvaluator:
    key = packaged.template["Resources"]["SigningKey"]
    return resource_policy(packaged, key["Properties"]["KeyPolicy"])


def test_the_signing_key_is_an_hmac_key_the_stack_keeps(packaged: Packaged) -> None:
    key = packaged.template["Resources"]["SigningKey"]
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    # Records signed with it must verify for as long as the audit trail lives
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"


def test_only_the_function_roles_sign(packaged: Packaged) -> None:
    policy, key = key_policy(packaged), names()["SigningKey.Arn"]
    for bot in bot_roles():
        assert policy.allowed("kms:GenerateMac", key, {"aws:PrincipalArn": bot}), bot
        assert policy.allowed("kms:VerifyMac", key, {"aws:PrincipalArn": bot}), bot
    for other in (POWER_USER, DEPLOYER, f"arn:aws:iam::{ACCOUNT}:root"):
        assert not policy.allowed("kms:GenerateMac", key, {"aws:PrincipalArn": other}), other
    # Operators verify a record by hand (their identity policy decides who: the key policy delegates to the account)
    assert policy.allowed("kms:VerifyMac", key, {"aws:PrincipalArn": POWER_USER})


def test_every_function_signs_with_the_stacks_key(packaged: Packaged) -> None:
    for logical, resource in packaged.template["Resources"].items():
        if resource["Type"] in FUNCTION_TYPES:
            variables = resource["Properties"]["Environment"]["Variables"]
            assert variables["DEPUTY_GUARD_SIGNING_KEY"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}, logical


# --- code signing ---------------------------------------------------------------------------------------------


def test_code_signing_is_optional_and_reaches_every_function(packaged: Packaged) -> None:
    parameter = packaged.template["Parameters"]["CodeSigningConfigArn"]
    assert parameter["Default"] == ""
    config = f"arn:aws:lambda:{REGION}:{ACCOUNT}:code-signing-config:csc-0123456789abcdef0"
    signed, unsigned = Stack(packaged, CodeSigningConfigArn=config), Stack(packaged)
    functions = [k for k, r in packaged.template["Resources"].items() if r["Type"] in FUNCTION_TYPES]
    assert len(functions) >= 4
    for logical in functions:
        properties = packaged.template["Resources"][logical]["Properties"]
        assert signed.concrete(properties)["CodeSigningConfigArn"] == config, logical
        assert "CodeSigningConfigArn" not in unsigned.concrete(properties), logical


# --- the guardrail SCP ------------------------------------------------------------------------------------------


def covered(template: dict[str, Any], scp: dict[str, Any]) -> list[str]:
    """What of the template the SCP fails to guard: '<resource>: <action>' lines (empty: all covered)."""
    stack, policy, missing = Stack.__new__(Stack), PolicyEvaluator(scp), []
    stack.template = template
    stack.values = {**names(), **{f"{k}": "" for k in template.get("Parameters", {})}}
    module = guardrails()
    outsider = {"aws:PrincipalArn": POWER_USER}

    def check(label: str, actions: tuple[str, ...], arn: str, **context: Any) -> None:
        for action in actions:
            if not policy.denied(action, arn, {**outsider, **context}):
                missing.append(f"{label}: {action}")
            if policy.denied(action, arn, {"aws:PrincipalArn": DEPLOYER, **context}):
                missing.append(f"{label}: {action} denied to the deployer")

    for logical, resource in template["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind in FUNCTION_TYPES:
            name = properties.get("FunctionName") or physical(logical)
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            check(logical, module.FUNCTION_ACTIONS, arn)
            check(f"{logical} event sources", module.EVENT_SOURCE_ACTIONS, "*", **{"lambda:FunctionArn": arn})
            for event, spec in (properties.get("Events") or {}).items():
                if spec["Type"] in ("EventBridgeRule", "Schedule", "CloudWatchEvent"):
                    rule = physical(f"{logical}{event}")[:64]
                    check(f"{logical}{event}", module.RULE_ACTIONS, f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}")
        elif kind == "AWS::IAM::Role":
            name = properties.get("RoleName") or physical(logical)
            check(logical, module.ROLE_ACTIONS, f"arn:aws:iam::{ACCOUNT}:role/{name}")
        elif kind == "AWS::Events::Rule":
            bus = properties.get("EventBusName")
            where = "" if bus is None else f"{template['Resources'][bus['Ref']]['Properties']['Name']}/"
            rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{where}{physical(logical)[:64]}"
            check(logical, module.RULE_ACTIONS, rule)
        elif kind == "AWS::Events::EventBus":
            check(logical, module.BUS_ACTIONS, f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{properties['Name']}")
        elif kind == "AWS::DynamoDB::Table":
            check(logical, module.TABLE_ACTIONS, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical(logical)}")
        elif kind == "AWS::KMS::Key":
            aliases = [
                stack.concrete(r["Properties"]["AliasName"])
                for r in template["Resources"].values()
                if r["Type"] == "AWS::KMS::Alias" and r["Properties"]["TargetKeyId"] == {"Ref": logical}
            ]
            key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            check(logical, module.KEY_ACTIONS, key, **{"kms:ResourceAliases": aliases})
    member = f"arn:aws:iam::{ACCOUNT}:role/deputy-guard-member"
    check("the member role", module.ROLE_ACTIONS, member)
    return missing


def test_make_package_writes_a_guardrail_scp_under_the_limit(packaged: Packaged) -> None:
    text = (packaged.dist / "guardrails-scp.json").read_text(encoding="utf-8")
    scp = json.loads(text)
    assert len(text) < 5120
    assert all(s["Effect"] == "Deny" for s in scp["Statement"])
    # The deployer is a placeholder until `make package DEPLOYER=ARN` (or an edit) names it
    assert {json.dumps(s["Condition"]["ArnNotLike"]) for s in scp["Statement"]} == {
        json.dumps({"aws:PrincipalArn": "DEPLOYER_PRINCIPAL_ARN"})
    }


def test_the_scp_guards_every_function_role_rule_bus_table_and_key_of_the_package(packaged: Packaged) -> None:
    # Given the packaged template and the SCP built from it for one deployer
    scp = guardrails().service_control_policy(packaged.template, DEPLOYER)
    # Then each of the listed actions is denied on each resource to anyone but the deployer
    assert covered(packaged.template, scp) == []
    assert json.loads((packaged.dist / "guardrails-scp.json").read_text()) == guardrails().service_control_policy(
        packaged.template
    )


# The actions that borrow or blind the bot, listed here and not read from deploy/guardrails.py, so that
# dropping one there fails this test rather than shrinking what the coverage check asks for.
REQUIRED = {
    "function": "lambda:UpdateFunctionCode lambda:UpdateFunctionConfiguration lambda:InvokeFunction "
    "lambda:AddPermission lambda:DeleteFunction lambda:PutFunctionConcurrency",
    "event_source": "lambda:CreateEventSourceMapping lambda:UpdateEventSourceMapping",
    "role": "iam:UpdateAssumeRolePolicy iam:PutRolePolicy iam:AttachRolePolicy iam:DeleteRolePolicy "
    "iam:DetachRolePolicy iam:DeleteRole",
    "rule": "events:DisableRule events:DeleteRule events:RemoveTargets events:PutRule events:PutTargets",
    "table": "dynamodb:DeleteTable dynamodb:UpdateTable dynamodb:PutResourcePolicy dynamodb:DeleteResourcePolicy",
    "key": "kms:ScheduleKeyDeletion kms:DisableKey kms:PutKeyPolicy",
}


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_the_scp_denies_every_action_that_borrows_or_blinds_the_bot(packaged: Packaged, kind: str) -> None:
    # Given the actions the SCP checks for this kind of resource / Then none of the required ones is missing
    checked = getattr(guardrails(), f"{kind.upper()}_ACTIONS")
    assert sorted(set(REQUIRED[kind].split()) - set(checked)) == []


def test_a_function_added_after_the_scp_was_built_is_reported_uncovered(packaged: Packaged) -> None:
    # Given an SCP built from the template, then a new function, role and key added to the template
    scp = guardrails().service_control_policy(packaged.template, DEPLOYER)
    grown = copy.deepcopy(packaged.template)
    grown["Resources"]["Reporter"] = copy.deepcopy(grown["Resources"]["Sweep"])
    grown["Resources"]["ReporterRole"] = copy.deepcopy(grown["Resources"]["SweepRole"])
    # Then the coverage check names them until the SCP is built again
    missing = covered(grown, scp)
    assert any(m.startswith("Reporter: lambda:UpdateFunctionCode") for m in missing)
    assert any(m.startswith("ReporterSweepEvent: events:DisableRule") for m in missing)
    assert any(m.startswith("ReporterRole: iam:UpdateAssumeRolePolicy") for m in missing)
    assert covered(grown, guardrails().service_control_policy(grown, DEPLOYER)) == []


def test_a_key_without_an_alias_cannot_be_guarded(packaged: Packaged) -> None:
    grown = copy.deepcopy(packaged.template)
    grown["Resources"]["LonelyKey"] = copy.deepcopy(grown["Resources"]["SigningKey"])
    with pytest.raises(guardrails().GuardrailError, match="LonelyKey"):
        guardrails().service_control_policy(grown)


def test_the_stack_name_rule_the_scp_relies_on_is_the_templates(packaged: Packaged) -> None:
    # The SCP finds CloudFormation-named resources by the stack's name prefix
    assert STACK.startswith("deputy-guard") and "must start with deputy-guard" in packaged.template["Description"]
    assert bundle() is not None
