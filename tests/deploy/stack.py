"""The packaged template as one concrete stack: names CloudFormation would give, parameters, conditions.

CloudFormation cannot run offline, so the tests resolve the few intrinsics the template uses (Ref, Fn::GetAtt,
Fn::Sub, Fn::If, Fn::Join, Fn::Equals, Fn::Not) for a stack called deputy-guard-prod in one account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.deploy.support import Packaged

STACK = "deputy-guard-prod"
ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTIONS = ("OnIamEvent", "Sweep", "APIHandler", "ScanAccount")
ROLES = ("OnIamEventRole", "SweepRole", "ApiHandlerRole", "ScanAccountRole")
ASYNC_FUNCTIONS = ("OnIamEvent", "Sweep")  # invoked asynchronously: EventBridge
RULE = "OnIamEventOnIamEventEvent"  # SAM names a function's rule <function><event>
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PlatformAdmin_0123456789abcdef"
_NO_VALUE = object()


def physical(logical: str) -> str:
    """The name CloudFormation generates: <stack>-<logical id>-<suffix>."""
    return f"{STACK}-{logical}-1A2B3C4D5E6F"


def names() -> dict[str, str]:
    """What Ref / Fn::GetAtt / ${...} give for this stack's resources and the pseudo parameters."""
    values = {
        "AWS::StackName": STACK,
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "Table": physical("Table"),
        "Table.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical('Table')}",
        "Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}",
        "AlarmTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-alarms",
        "AlarmKey": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "SigningKey": "5678abcd-12ab-34cd-56ef-1234567890ab",
        "SigningKey.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5678abcd-12ab-34cd-56ef-1234567890ab",
        "FailedEvents": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical('FailedEvents')}",
        "FailedEvents.QueueName": physical("FailedEvents"),
        "FailedEvents.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical('FailedEvents')}",
        "WorkQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical('WorkQueue')}",
        "WorkQueue.QueueName": physical("WorkQueue"),
        "WorkQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical('WorkQueue')}",
        "WorkDeadLetters": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical('WorkDeadLetters')}",
        "WorkDeadLetters.QueueName": physical("WorkDeadLetters"),
        "WorkDeadLetters.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical('WorkDeadLetters')}",
        "DeputyGuardBus": "deputy-guard",
        "DeputyGuardBus.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/deputy-guard",
        "OrgIamEventRule.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/deputy-guard/{physical('OrgIamEventRule')}",
        RULE: physical(RULE)[:64],
        f"{RULE}.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{physical(RULE)[:64]}",
        "Dashboard": STACK,
    }
    for role in ROLES:
        values[role] = physical(role)
        values[f"{role}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{physical(role)}"
    for function in FUNCTIONS:
        values[function] = physical(function)
        values[f"{function}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical(function)}"
    return values


def parameter_values(packaged: Packaged, **overrides: str) -> dict[str, str]:
    """Every parameter's default, the required ones filled in, then ``overrides``."""
    parameters = packaged.template["Parameters"]
    values = {name: str(p["Default"]) for name, p in parameters.items() if "Default" in p}
    values["SlackWebhookParameter"] = "/deputy-guard/prod/slack-webhook"
    values["DeployerPrincipalArn"] = DEPLOYER
    values.update(overrides)
    assert set(values) == set(parameters), f"parameters without a value: {set(parameters) - set(values)}"
    return values


class Stack:
    """The template with its parameters and conditions decided: ``concrete`` turns a value into plain JSON."""

    def __init__(self, packaged: Packaged, **parameters: str) -> None:
        self.template = packaged.template
        self.values = {**names(), **parameter_values(packaged, **parameters)}
        for logical, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                alarm_name = self.concrete(resource["Properties"]["AlarmName"])
                self.values[f"{logical}.Arn"] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"

    def condition(self, name: str) -> bool:
        return bool(self._decide(self.template["Conditions"][name]))

    def created(self, logical: str) -> bool:
        condition = self.template["Resources"][logical].get("Condition")
        return condition is None or self.condition(condition)

    def _decide(self, expression: Any) -> Any:
        if isinstance(expression, dict) and "Fn::Not" in expression:
            return not self._decide(expression["Fn::Not"][0])
        if isinstance(expression, dict) and "Fn::Equals" in expression:
            left, right = (self.concrete(v) for v in expression["Fn::Equals"])
            return str(left) == str(right)
        if isinstance(expression, dict) and "Condition" in expression:
            return self.condition(expression["Condition"])
        raise AssertionError(f"unexpected condition {expression!r}")

    def concrete(self, value: Any) -> Any:
        resolved = self._concrete(value)
        assert resolved is not _NO_VALUE
        return resolved

    def _concrete(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self._concrete(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return _NO_VALUE if value["Ref"] == "AWS::NoValue" else self.values[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            return self.values[".".join(value["Fn::GetAtt"])]
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.values[m.group(1)], value["Fn::Sub"])
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.concrete(p)) for p in parts)
        if set(value) == {"Fn::If"}:
            condition, yes, no = value["Fn::If"]
            return self._concrete(yes if self.condition(condition) else no)
        if len(value) == 1 and next(iter(value)).startswith("Fn::"):
            raise AssertionError(f"unexpected intrinsic {value!r}")
        return {k: v for k, v in ((k, self._concrete(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def environment(self, function: str) -> dict[str, str]:
        variables: Mapping[str, Any] = self.template["Resources"][function]["Properties"]["Environment"]["Variables"]
        concrete = self.concrete(dict(variables))
        assert all(isinstance(v, str) for v in concrete.values()), concrete
        return dict(concrete)
