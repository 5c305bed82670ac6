"""The bot's own guardrails, derived from the packaged central template (docs/security.md, threat model).

python deploy/guardrails.py DIST/sam.json --out DIST/guardrails-scp.json [--deployer ARN]
    Gives every function of the template the optional ``CodeSigningConfigArn`` stack parameter, then writes a
    service control policy for the central account that denies everyone but the deployer the actions that
    borrow or blind the bot, on every function, role, EventBridge rule and bus, table and KMS key the template
    holds (and the member role). Nothing is listed by hand: each resource of those kinds in the template is
    covered by its own name pattern, or this step fails, naming it.

Names are patterns because CloudFormation names the resources at deploy time (``<stack>-<logical id>-<suffix>``)
and the stack name must start with ``deputy-guard``. The deployer stays a placeholder unless ``--deployer`` names
it; replace it before attaching the policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chalicelib.domain.scope import DEFAULT_MEMBER_ROLE

STACK_PREFIX = "deputy-guard"
DEPLOYER_PLACEHOLDER = "DEPLOYER_PRINCIPAL_ARN"
SCP_LIMIT = 5120  # characters, the SCP size quota (whitespace counts, so the policy is written compactly)
CODE_SIGNING_PARAMETER = "CodeSigningConfigArn"
CODE_SIGNING_CONDITION = "HasCodeSigningConfig"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
# SAM turns these function events into an AWS::Events::Rule named <function><event> on deploy.
RULE_EVENTS = ("EventBridgeRule", "Schedule", "CloudWatchEvent")

FUNCTION_ACTIONS = (
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:InvokeFunction",
    "lambda:InvokeFunctionUrl",
    "lambda:AddPermission",
    "lambda:RemovePermission",
    "lambda:DeleteFunction",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:PutFunctionCodeSigningConfig",
    "lambda:DeleteFunctionCodeSigningConfig",
    "lambda:PutFunctionEventInvokeConfig",
    "lambda:UpdateFunctionEventInvokeConfig",
    "lambda:DeleteFunctionEventInvokeConfig",
)
EVENT_SOURCE_ACTIONS = (
    "lambda:CreateEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
)
ROLE_ACTIONS = (
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRole",
    "iam:PassRole",
)
RULE_ACTIONS = (
    "events:DisableRule",
    "events:DeleteRule",
    "events:RemoveTargets",
    "events:PutRule",
    "events:PutTargets",
)
BUS_ACTIONS = ("events:DeleteEventBus", "events:PutPermission", "events:RemovePermission")
TABLE_ACTIONS = (
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
    "dynamodb:PutResourcePolicy",
    "dynamodb:DeleteResourcePolicy",
)
KEY_ACTIONS = (
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
)
ALIAS_ACTIONS = ("kms:DeleteAlias", "kms:UpdateAlias")


class GuardrailError(RuntimeError):
    """A resource of the template cannot be covered; the message names it."""


def _name_pattern(logical: str, properties: dict[str, Any], name_key: str) -> str:
    """The resource's name: the literal one, ``deputy-guard*`` for a parameter, else CloudFormation's pattern."""
    name = properties.get(name_key)
    if name is None:
        return f"{STACK_PREFIX}*-{logical}-*"
    if isinstance(name, str):
        return name
    # A parameter or a condition: the template's parameters only allow deputy-guard names.
    return f"{STACK_PREFIX}*"


def _resources(template: dict[str, Any], *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, resource in template["Resources"].items():
        if resource.get("Type") in types:
            yield logical, resource.get("Properties", {})


def functions(template: dict[str, Any]) -> list[str]:
    arns = []
    for logical, properties in _resources(template, *FUNCTION_TYPES):
        arns.append(f"arn:*:lambda:*:*:function:{_name_pattern(logical, properties, 'FunctionName')}")
    return arns


def roles(template: dict[str, Any]) -> list[str]:
    arns = [
        f"arn:*:iam::*:role/{_name_pattern(logical, p, 'RoleName')}"
        for logical, p in _resources(template, "AWS::IAM::Role")
    ]
    return [*arns, f"arn:*:iam::*:role/{DEFAULT_MEMBER_ROLE}"]


def rules(template: dict[str, Any]) -> list[str]:
    arns = []
    for logical, properties in _resources(template, "AWS::Events::Rule"):
        bus = properties.get("EventBusName")
        prefix = "rule/" if bus is None else f"rule/{_bus_name(template, bus)}/"
        arns.append(f"arn:*:events:*:*:{prefix}{_name_pattern(logical, properties, 'Name')}")
    for logical, properties in _resources(template, *FUNCTION_TYPES):
        for event, spec in (properties.get("Events") or {}).items():
            if spec.get("Type") in RULE_EVENTS:
                arns.append(f"arn:*:events:*:*:rule/{STACK_PREFIX}*-{logical}{event}-*")
    return arns


def _bus_name(template: dict[str, Any], bus: Any) -> str:
    if isinstance(bus, str):
        return bus
    if isinstance(bus, dict) and "Ref" in bus:
        resource = template["Resources"].get(bus["Ref"], {})
        name = resource.get("Properties", {}).get("Name")
        if isinstance(name, str):
            return name
    raise GuardrailError(f"cannot name the event bus {bus!r}")


def buses(template: dict[str, Any]) -> list[str]:
    return [
        f"arn:*:events:*:*:event-bus/{_name_pattern(logical, p, 'Name')}"
        for logical, p in _resources(template, "AWS::Events::EventBus")
    ]


def tables(template: dict[str, Any]) -> list[str]:
    return [
        f"arn:*:dynamodb:*:*:table/{_name_pattern(logical, p, 'TableName')}"
        for logical, p in _resources(template, "AWS::DynamoDB::Table")
    ]


def key_aliases(template: dict[str, Any]) -> list[str]:
    """Each KMS key's alias, as a pattern: keys are named by a random id, so the policy finds them by alias."""
    aliases: dict[str, str] = {}
    for _logical, properties in _resources(template, "AWS::KMS::Alias"):
        target = properties.get("TargetKeyId")
        name = properties.get("AliasName")
        text = name.get("Fn::Sub") if isinstance(name, dict) else name
        if isinstance(target, dict) and "Ref" in target and isinstance(text, str):
            aliases[target["Ref"]] = text.replace("${AWS::StackName}", f"{STACK_PREFIX}*")
    found = []
    for logical, _properties in _resources(template, "AWS::KMS::Key"):
        if logical not in aliases:
            raise GuardrailError(f"the KMS key {logical} has no alias: the guardrail policy could not find it")
        found.append(aliases[logical])
    return found


def _deny(sid: str, actions: tuple[str, ...], resources: list[str], deployer: str, **extra: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {"ArnNotLike": {"aws:PrincipalArn": deployer}}
    for operator, block in extra.items():
        condition.setdefault(operator, {}).update(block)
    return {"Sid": sid, "Effect": "Deny", "Action": list(actions), "Resource": resources, "Condition": condition}


def service_control_policy(template: dict[str, Any], deployer: str = DEPLOYER_PLACEHOLDER) -> dict[str, Any]:
    """The central account's guardrail SCP for this template (service principals are not limited by SCPs)."""
    function_arns = functions(template)
    aliases = key_aliases(template)
    statements = [
        _deny("DeputyGuardFunctions", FUNCTION_ACTIONS, function_arns, deployer),
        _deny(
            "DeputyGuardEventSources",
            EVENT_SOURCE_ACTIONS,
            ["*"],
            deployer,
            ArnLike={"lambda:FunctionArn": function_arns},
        ),
        _deny("DeputyGuardRoles", ROLE_ACTIONS, roles(template), deployer),
        _deny("DeputyGuardRules", RULE_ACTIONS, rules(template), deployer),
        _deny("DeputyGuardBus", BUS_ACTIONS, buses(template), deployer),
        _deny("DeputyGuardTable", TABLE_ACTIONS, tables(template), deployer),
        _deny(
            "DeputyGuardKeys",
            KEY_ACTIONS,
            ["arn:*:kms:*:*:key/*"],
            deployer,
            **{"ForAnyValue:StringLike": {"kms:ResourceAliases": aliases}},
        ),
        _deny("DeputyGuardKeyAliases", ALIAS_ACTIONS, [f"arn:*:kms:*:*:{alias}" for alias in aliases], deployer),
    ]
    policy = {"Version": "2012-10-17", "Statement": [s for s in statements if s["Resource"]]}
    size = len(json.dumps(policy, separators=(",", ":")))
    if size > SCP_LIMIT:
        raise GuardrailError(f"the guardrail policy is {size} characters, over the SCP limit of {SCP_LIMIT}")
    return policy


def add_code_signing(template: dict[str, Any]) -> int:
    """Every function carries ``CodeSigningConfigArn`` when the stack parameter is set; returns how many."""
    if CODE_SIGNING_PARAMETER not in template.get("Parameters", {}):
        raise GuardrailError(f"the template has no {CODE_SIGNING_PARAMETER} parameter (.chalice/resources.json)")
    count = 0
    for _logical, properties in _resources(template, *FUNCTION_TYPES):
        properties[CODE_SIGNING_PARAMETER] = {
            "Fn::If": [CODE_SIGNING_CONDITION, {"Ref": CODE_SIGNING_PARAMETER}, {"Ref": "AWS::NoValue"}]
        }
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", type=Path, help="the packaged central template (DIST/sam.json), updated in place")
    parser.add_argument("--out", type=Path, required=True, help="where to write the guardrail SCP")
    parser.add_argument(
        "--deployer", default=DEPLOYER_PLACEHOLDER, help="the deployer principal ARN (wildcards allowed)"
    )
    args = parser.parse_args(argv)
    template = json.loads(args.template.read_text(encoding="utf-8"))
    try:
        signed = add_code_signing(template)
        policy = service_control_policy(template, args.deployer or DEPLOYER_PLACEHOLDER)
    except GuardrailError as exc:
        print(f"guardrails: {exc}", file=sys.stderr)
        return 1
    args.template.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    # Compact: Organizations counts every character against the limit.
    text = json.dumps(policy, separators=(",", ":"))
    args.out.write_text(text, encoding="utf-8")
    print(f"{signed} functions take {CODE_SIGNING_PARAMETER}; {args.out.name}: {len(text)} of {SCP_LIMIT} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
