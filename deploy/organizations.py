"""The organization's two templates, generated from the project's own sources.

python deploy/organizations.py central DIST/sam.json
    Adds to the packaged central template what must come from the code: a second rule on the
    organization's ``deputy-guard`` bus with the IAM event pattern Chalice built from app.py (the same
    pattern, never a copy to keep in step), and its permission to invoke ``on_iam_event``.
python deploy/organizations.py member --out DIST/member-account.json
    Writes the member accounts' template (a service-managed StackSet with auto-deployment; a plain stack
    in the management account): the ``deputy-guard-member`` role with the IAM statements of
    policies/deputy-guard-policy.json, rescoped to the member account, and a us-east-1 rule forwarding
    the same IAM event pattern to the central bus through a role that may only put events on it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
POLICY_FILE = PROJECT / "policies" / "deputy-guard-policy.json"
BUS_NAME = "deputy-guard"
ORG_RULE = "OrgIamEventRule"
ORG_PERMISSION = "OrgIamEventPermission"
OWN_ROLES_SID = "NeverTouchOwnRoles"
# The bot's own function roles in the central account are never a member's concern: the member stack denies
# writes to its own two roles instead.
_IAM = "iam:"


class OrganizationTemplateError(RuntimeError):
    """The packaged template is not what this step expects."""


# --- the event pattern, from app.py ---------------------------------------------------------------------


def iam_event_pattern() -> dict[str, Any]:
    """app.IAM_EVENT_PATTERN, the pattern Chalice deploys for ``on_iam_event`` (importing app.py imports no boto3)."""
    sys.path.insert(0, str(PROJECT))
    try:
        import app
    finally:
        sys.path.remove(str(PROJECT))
    return copy.deepcopy(app.IAM_EVENT_PATTERN)


# --- central ------------------------------------------------------------------------------------------------


def add_organization_rule(template: dict[str, Any]) -> list[str]:
    """The rule on the organization's bus, targeting ``on_iam_event`` like the default bus's rule does."""
    resources: dict[str, Any] = template["Resources"]
    if "DeputyGuardBus" not in resources:
        raise OrganizationTemplateError("the merge template has no DeputyGuardBus (.chalice/resources.json)")
    events = resources.get("OnIamEvent", {}).get("Properties", {}).get("Events", {})
    chalice_rule = next((e["Properties"] for e in events.values() if e.get("Type") == "EventBridgeRule"), None)
    if chalice_rule is None or "Pattern" not in chalice_rule:
        raise OrganizationTemplateError("OnIamEvent has no EventBridge rule with a pattern")
    target: dict[str, Any] = {"Id": "on_iam_event", "Arn": {"Fn::GetAtt": ["OnIamEvent", "Arn"]}}
    for key in ("DeadLetterConfig", "RetryPolicy"):
        if key in chalice_rule:
            target[key] = copy.deepcopy(chalice_rule[key])
    resources[ORG_RULE] = {
        "Type": "AWS::Events::Rule",
        "Condition": "HasOrganization",
        "Properties": {
            "Description": "IAM events the organization's accounts forward to deputy-guard (member-account.json)",
            "EventBusName": {"Ref": "DeputyGuardBus"},
            "EventPattern": copy.deepcopy(chalice_rule["Pattern"]),
            "State": "ENABLED",
            "Targets": [target],
        },
    }
    resources[ORG_PERMISSION] = {
        "Type": "AWS::Lambda::Permission",
        "Condition": "HasOrganization",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "OnIamEvent"},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [ORG_RULE, "Arn"]},
        },
    }
    return [f"{ORG_RULE} on the {BUS_NAME} bus with on_iam_event's pattern, and its permission"]


# --- member ---------------------------------------------------------------------------------------------------


def member_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The bot policy's IAM statements, for the member role: the same actions, conditions and denies.

    ``arn:aws:iam::*:`` becomes the member's own account and partition; the own-roles deny names the member
    stack's own two roles (the bot never rewrites the role it acts through, nor the forwarder).
    """
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if not all(a.startswith(_IAM) for a in actions):
            continue
        member = copy.deepcopy(statement)
        if statement.get("Sid") == OWN_ROLES_SID:
            # The member role by name: its own ARN inside its own policy would be a circular reference.
            own = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${MemberRoleName}"}
            member["Resource"] = [own, {"Fn::GetAtt": ["ForwarderRole", "Arn"]}]
        else:
            member["Resource"] = _rescoped(statement["Resource"])
        statements.append(member)
    if not any(s.get("Sid") == OWN_ROLES_SID for s in statements):
        raise OrganizationTemplateError(f"the bot policy has no {OWN_ROLES_SID} deny")
    return statements


def _rescoped(resource: Any) -> Any:
    if isinstance(resource, list):
        return [_rescoped(r) for r in resource]
    if isinstance(resource, str) and resource.startswith("arn:aws:iam::*:"):
        return {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:" + resource.split(":", 5)[5]}
    return resource


def member_template(policy: dict[str, Any], pattern: dict[str, Any]) -> dict[str, Any]:
    """The member accounts' CloudFormation template."""
    central_account = {"Fn::Select": [4, {"Fn::Split": [":", {"Ref": "CentralEventBusArn"}]}]}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "deputy-guard member account: the role the central bot assumes, and the IAM events forwarded "
        "to its bus. Deploy with a service-managed StackSet (auto-deployment) in us-east-1, and as a plain "
        "stack in the management account (docs/organizations.md).",
        "Parameters": {
            "DeputyGuardRoleArns": {
                "Type": "CommaDelimitedList",
                "Description": "The central deputy-guard functions' role ARNs (the central stack's output "
                "MemberTrustRoleArns): the only principals the member role trusts.",
            },
            "CentralEventBusArn": {
                "Type": "String",
                "Description": "The central deputy-guard bus (the central stack's output EventBusArn).",
                "AllowedPattern": r"^arn:aws[a-z-]*:events:us-east-1:[0-9]{12}:event-bus/" + BUS_NAME + "$",
                "ConstraintDescription": f"the ARN of the central account's {BUS_NAME} event bus in us-east-1",
            },
            "MemberRoleName": {
                "Type": "String",
                "Default": "deputy-guard-member",
                "Description": "DEPUTY_GUARD_MEMBER_ROLE of the central stack (default deputy-guard-member).",
                "AllowedPattern": r"^[\w+=,.@-]{1,64}$",
            },
        },
        "Rules": {
            "UsEast1Only": {
                "Assertions": [
                    {
                        "Assert": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
                        "AssertDescription": "IAM's CloudTrail events reach EventBridge in us-east-1 only",
                    }
                ]
            }
        },
        "Conditions": {
            # The central account's events already reach the bot on its default bus.
            "ForwardsEvents": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::AccountId"}, central_account]}]},
        },
        "Resources": {
            "MemberRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "MemberRoleName"},
                    "Description": "deputy-guard: the central bot reads and fixes trust policies through this role",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "CentralBotOnly",
                                "Effect": "Allow",
                                "Principal": {"AWS": {"Ref": "DeputyGuardRoleArns"}},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "deputy-guard",
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": member_statements(policy)},
                        }
                    ],
                },
            },
            "ForwarderRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "deputy-guard: EventBridge puts this account's IAM events on the central bus",
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "put-events-on-the-central-bus",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Sid": "CentralBusOnly",
                                        "Effect": "Allow",
                                        "Action": "events:PutEvents",
                                        "Resource": {"Ref": "CentralEventBusArn"},
                                    }
                                ],
                            },
                        }
                    ],
                },
            },
            "ForwardIamEvents": {
                "Type": "AWS::Events::Rule",
                "Condition": "ForwardsEvents",
                "Properties": {
                    "Description": "deputy-guard: this account's IAM events, to the central bot",
                    "EventPattern": pattern,
                    "State": "ENABLED",
                    "Targets": [
                        {
                            "Id": "deputy-guard",
                            "Arn": {"Ref": "CentralEventBusArn"},
                            "RoleArn": {"Fn::GetAtt": ["ForwarderRole", "Arn"]},
                        }
                    ],
                },
            },
        },
        "Outputs": {
            "MemberRoleArn": {"Value": {"Fn::GetAtt": ["MemberRole", "Arn"]}},
        },
    }


# --- command line -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="organizations.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    central = commands.add_parser("central", help="add the organization bus's rule to the packaged template")
    central.add_argument("template", type=Path)
    member = commands.add_parser("member", help="write the member accounts' template")
    member.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "central":
            template = json.loads(args.template.read_text(encoding="utf-8"))
            lines = add_organization_rule(template)
            args.template.write_text(json.dumps(template, indent=2, separators=(",", ": ")) + "\n", encoding="utf-8")
        else:
            policy = json.loads(POLICY_FILE.read_text(encoding="utf-8"))
            template = member_template(policy, iam_event_pattern())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
            lines = [f"{args.out}: the member role ({len(member_statements(policy))} IAM statements) and the forwarder"]
    except OrganizationTemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
