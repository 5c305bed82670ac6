"""Alarms, the encrypted alarm topic CloudWatch can publish to, and the dashboard.

CloudWatch cannot publish to a topic encrypted with alias/aws/sns (its key policy cannot be changed), so the
alarm topic has a customer-managed key whose policy lets CloudWatch, for this stack's alarms only, use it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import ACCOUNT, ASYNC_FUNCTIONS, FUNCTIONS, REGION, RULE, STACK, Stack
from tests.deploy.support import PROJECT, Packaged, PolicyEvaluator

pytestmark = pytest.mark.slow

OPERATIONS = PROJECT / "docs" / "operations.md"
# Alarm resource -> what it watches: (namespace, metric) pairs and the resources they are about.
WATCHED = {
    "FailedEventsAlarm": {("AWS/SQS", "ApproximateNumberOfMessagesVisible")},
    "WorkDeadLettersAlarm": {("AWS/SQS", "ApproximateNumberOfMessagesVisible")},
    "LambdaErrorsAlarm": {("AWS/Lambda", "Errors")},
    "LambdaThrottlesAlarm": {("AWS/Lambda", "Throttles")},
    "DestinationDeliveryFailuresAlarm": {("AWS/Lambda", "DestinationDeliveryFailures")},
    "AsyncEventsDroppedAlarm": {("AWS/Lambda", "AsyncEventsDropped")},
    "RuleFailedInvocationsAlarm": {("AWS/Events", "FailedInvocations")},
    "SweepHeartbeatAlarm": {("AWS/Lambda", "Invocations"), ("AWS/Lambda", "Errors")},
    "IamEventCanaryAlarm": {("AWS/Events", "MatchedEvents")},
    "BotFailuresAlarm": {
        ("DeputyGuard", "FixFailed"),
        ("DeputyGuard", "AuditWriteFailed"),
        ("DeputyGuard", "NotificationUndelivered"),
        ("DeputyGuard", "IdempotencyStoreFailed"),
    },
}
ASYNC = ASYNC_FUNCTIONS


def alarms(packaged: Packaged) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in packaged.template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric an alarm reads, as {namespace, name, dimensions}, whether plain or in metric math."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        return [
            {"namespace": properties["Namespace"], "name": properties["MetricName"], "dims": properties["Dimensions"]}
        ]
    found = []
    for query in properties["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append({"namespace": metric["Namespace"], "name": metric["MetricName"], "dims": metric["Dimensions"]})
    return found


def test_the_issues_alarms_are_all_there(packaged: Packaged) -> None:
    found = alarms(packaged)
    assert set(found) == set(WATCHED)
    for name, alarm in found.items():
        assert {(m["namespace"], m["name"]) for m in metrics(alarm)} == WATCHED[name], name


def test_lambda_alarms_cover_the_functions_they_concern(packaged: Packaged) -> None:
    found = alarms(packaged)
    for name, expected in [
        ("LambdaErrorsAlarm", FUNCTIONS),
        ("LambdaThrottlesAlarm", FUNCTIONS),
        ("DestinationDeliveryFailuresAlarm", ASYNC),  # only asynchronous invocations have destinations
        ("AsyncEventsDroppedAlarm", ASYNC),
        ("SweepHeartbeatAlarm", ("Sweep", "Sweep")),
    ]:
        functions = [m["dims"] for m in metrics(found[name])]
        assert functions == [[{"Name": "FunctionName", "Value": {"Ref": f}}] for f in expected], name
    for name in ("RuleFailedInvocationsAlarm", "IamEventCanaryAlarm"):
        assert metrics(found[name])[0]["dims"] == [{"Name": "RuleName", "Value": {"Ref": RULE}}], name
    queue = metrics(found["FailedEventsAlarm"])[0]["dims"]
    assert queue == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailedEvents", "QueueName"]}}]


def test_bot_failure_alarms_read_metrics_the_code_emits(packaged: Packaged) -> None:
    sources = "".join(p.read_text(encoding="utf-8") for p in (PROJECT / "chalicelib").rglob("*.py"))
    emitted = set(re.findall(r"add_metric\(\s*(?:name=)?\"(\w+)\"", sources))
    for metric in metrics(alarms(packaged)["BotFailuresAlarm"]):
        assert metric["name"] in emitted, metric["name"]
        # Powertools Metrics adds the service as the one dimension
        assert metric["dims"] == [{"Name": "service", "Value": "deputy-guard"}]


def test_silence_alarms_treat_no_data_as_trouble(packaged: Packaged) -> None:
    stack = Stack(packaged)
    for name, parameter in (
        ("SweepHeartbeatAlarm", "SweepHeartbeatHours"),
        ("IamEventCanaryAlarm", "IamEventCanaryHours"),
    ):
        properties = alarms(packaged)[name]["Properties"]
        assert properties["TreatMissingData"] == "breaching", name
        assert properties["ComparisonOperator"] == "LessThanThreshold" and properties["Threshold"] == 1, name
        hours = int(stack.values[parameter])
        assert stack.concrete(properties["EvaluationPeriods"]) == stack.concrete(properties["DatapointsToAlarm"])
        periods = [q["MetricStat"]["Period"] for q in properties.get("Metrics", []) if "MetricStat" in q]
        period = properties.get("Period") or periods[0]
        assert period == 3600 and hours * period <= 7 * 24 * 3600  # CloudWatch evaluates at most 7 days


def test_the_canary_can_be_turned_off(packaged: Packaged) -> None:
    assert Stack(packaged).created("IamEventCanaryAlarm")
    assert not Stack(packaged, IamEventCanaryHours="0").created("IamEventCanaryAlarm")


def test_every_alarm_tells_the_alarm_topic_and_where_to_read(packaged: Packaged) -> None:
    guide = OPERATIONS.read_text(encoding="utf-8")
    for name, alarm in alarms(packaged).items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["OKActions"] == [{"Ref": "AlarmTopic"}], name
        short = Stack(packaged).concrete(properties["AlarmName"]).removeprefix(f"{STACK}-")
        assert properties["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-" + short}, name
        assert f"alarm {short}" in properties["AlarmDescription"], name
        assert f"### `{short}`" in guide, f"docs/operations.md has no section for {short}"


def _alarm_arn(packaged: Packaged, name: str) -> str:
    alarm_name = Stack(packaged).concrete(alarms(packaged)[name]["Properties"]["AlarmName"])
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"


def _resolved_policy(packaged: Packaged, document: Any) -> PolicyEvaluator:
    return PolicyEvaluator(Stack(packaged).concrete(document))


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(packaged: Packaged) -> None:
    resources = packaged.template["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}  # not alias/aws/sns: CloudWatch could not publish
    key = resources["AlarmKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    policy = _resolved_policy(packaged, key["Properties"]["KeyPolicy"])
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for name in alarms(packaged):
        # Given CloudWatch publishing for one of this stack's alarms / Then it may encrypt the message
        context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": _alarm_arn(packaged, name)}
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert policy.allowed(action, key_arn, context), (name, action)
    # but not for another account's alarms, nor for another stack's (the confused deputy, once more)
    foreign = {
        "aws:SourceAccount": "999988887777",
        "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:999988887777:alarm:x",
    }
    other = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:payments"}
    cloudwatch = next(s for s in policy.statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"})
    single = PolicyEvaluator({"Version": "2012-10-17", "Statement": [cloudwatch]})
    assert not single.allowed("kms:GenerateDataKey", key_arn, foreign)
    assert not single.allowed("kms:GenerateDataKey", key_arn, other)
    assert not single.allowed("kms:Encrypt", key_arn, {"aws:SourceAccount": ACCOUNT})


def test_only_this_stacks_alarms_publish_to_the_alarm_topic(packaged: Packaged) -> None:
    resources = packaged.template["Resources"]
    topic_policy = resources["AlarmTopicPolicy"]["Properties"]
    assert topic_policy["Topics"] == [{"Ref": "AlarmTopic"}]
    policy = _resolved_policy(packaged, topic_policy["PolicyDocument"])
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-alarms"
    for name in alarms(packaged):
        context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": _alarm_arn(packaged, name)}
        assert policy.allowed("sns:Publish", topic_arn, context), name
    assert not policy.allowed("sns:Publish", topic_arn, {"aws:SourceAccount": "999988887777"})


def test_the_dashboard_is_valid_json_about_this_stack(packaged: Packaged) -> None:
    dashboard = packaged.template["Resources"]["Dashboard"]["Properties"]
    body = json.loads(Stack(packaged).concrete(dashboard["DashboardBody"]))
    widgets = body["widgets"]
    assert any(w["type"] == "alarm" for w in widgets)
    text = json.dumps(body)
    for name in (*FUNCTIONS, RULE, "FailedEvents.QueueName"):
        assert Stack(packaged).values[name] in text, name
    referenced = set(re.findall(r"\$\{([A-Za-z]+)[.}]", dashboard["DashboardBody"]["Fn::Sub"]))
    assert referenced - {"AWS", RULE} <= set(packaged.template["Resources"])  # SAM generates the rule
    # A conditional alarm would break the dashboard when its condition is false
    assert "IamEventCanaryAlarm" not in referenced


def test_the_outputs_name_the_alarm_topic_and_the_dashboard(packaged: Packaged) -> None:
    outputs = packaged.template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert "Dashboard" in json.dumps(outputs["DashboardUrl"]["Value"])
    assert Path(OPERATIONS).is_file()
