"""`make package` output: the SAM template's structure and cfn-lint.

An IAM policy simulation or a CloudFormation deployment needs AWS, so these tests read the template:
the rule pattern, the schedule, the resources the merge template adds, how they are wired into the
functions and the REST API's IAM authorisation. Elsewhere: the expansion SAM makes of it
(test_sam_expansion.py), parameters (test_stack_parameters.py), the table's and roles' defences
(test_stack_safety.py), alarms (test_alarms.py) and the deployment package (test_lambda_package.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import app as chalice_app
from tests.deploy.support import (
    MERGE_TEMPLATE,
    PACKAGED_SCHEDULE,
    Packaged,
    PolicyEvaluator,
    assert_cfn_lint_clean,
    load_json,
)

pytestmark = pytest.mark.slow

ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTIONS = ("OnIamEvent", "Sweep", "APIHandler")
FAILED_EVENTS_ARN = {"Fn::GetAtt": ["FailedEvents", "Arn"]}


def resources(packaged: Packaged) -> dict[str, Any]:
    return dict(packaged.template["Resources"])


def props(packaged: Packaged, name: str) -> dict[str, Any]:
    return dict(resources(packaged)[name]["Properties"])


# --- make package and cfn-lint ---------------------------------------------------------------------------


def test_make_package_writes_the_template_and_the_deployment_package(packaged: Packaged) -> None:
    assert (packaged.dist / "sam.json").is_file()
    assert (packaged.dist / "deployment.zip").is_file()
    assert re.search(r"deployment\.zip: [\d.]+ MiB zipped \(limit 50\.0 MiB\), [\d.]+ MiB unzipped", packaged.output)
    assert "total unzipped" in packaged.output


def test_cfn_lint_finds_no_errors(packaged: Packaged) -> None:
    assert_cfn_lint_clean(packaged.dist / "sam.json")


def test_every_merged_resource_patches_a_real_chalice_resource(packaged: Packaged) -> None:
    # A resource the merge template names but Chalice no longer generates would arrive without a Type
    merged = load_json(MERGE_TEMPLATE)["Resources"]
    for name in merged:
        assert "Type" in resources(packaged)[name], f"{name}: Chalice did not generate it; fix the merge template"


# --- the event rule, the schedule, the API ---------------------------------------------------------------


def _single_event(packaged: Packaged, function: str) -> tuple[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = props(packaged, function)["Events"]
    assert len(events) == 1
    name, event = next(iter(events.items()))
    return name, event


def test_the_rule_pattern_is_the_apps(packaged: Packaged) -> None:
    _name, event = _single_event(packaged, "OnIamEvent")
    assert event["Type"] == "EventBridgeRule"
    assert event["Properties"]["Pattern"] == chalice_app.IAM_EVENT_PATTERN
    assert "EventBusName" not in event["Properties"]  # the default bus, where CloudTrail delivers IAM's events


def test_the_sweep_schedule_is_read_at_package_time(packaged: Packaged) -> None:
    _name, event = _single_event(packaged, "Sweep")
    assert event == {"Type": "Schedule", "Properties": {"Schedule": PACKAGED_SCHEDULE}}


def _methods(packaged: Packaged) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in props(packaged, "RestAPI")["DefinitionBody"]["paths"].items():
        for method, spec in methods.items():
            yield path, method.upper(), spec


# Slack cannot sign SigV4: its button clicks carry Slack's own request signature, checked by the handler.
SLACK_ROUTE = ("/slack/actions", "POST")


def test_every_api_method_but_slacks_requires_iam_authorisation(packaged: Packaged) -> None:
    definition = props(packaged, "RestAPI")["DefinitionBody"]
    sigv4 = definition["securityDefinitions"]["sigv4"]
    assert sigv4["x-amazon-apigateway-authtype"] == "awsSigv4"
    methods = list(_methods(packaged))
    for path, method, spec in methods:
        if (path, method) == SLACK_ROUTE:
            assert "security" not in spec, "the Slack route is verified by its signature, not SigV4"
        else:
            assert spec["security"] == [{"sigv4": []}], f"{method} {path}"
    routes = {(path, m) for path, entries in chalice_app.app.routes.items() for m in entries}
    assert {(path, method) for path, method, _spec in methods} == routes
    assert routes == {
        ("/scans", "POST"),
        ("/roles/{role_name}", "GET"),
        ("/roles/{role_name}/remediate", "POST"),
        ("/roles/{role_name}/revert", "POST"),
        SLACK_ROUTE,
    }


def test_the_slack_route_is_throttled_on_the_stage(packaged: Packaged) -> None:
    [setting] = props(packaged, "RestAPI")["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/~1slack~1actions", "POST")
    assert 0 < setting["ThrottlingRateLimit"] <= 10 and 0 < setting["ThrottlingBurstLimit"] <= 20


def test_approvers_need_a_signing_secret(packaged: Packaged) -> None:
    rule = packaged.template["Rules"]["SlackApproversNeedASigningSecret"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackApprovers"}, ""]}]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackSigningSecretParameter"}, ""]}]}


def test_the_api_is_regional(packaged: Packaged) -> None:
    assert props(packaged, "RestAPI")["EndpointConfiguration"] == "REGIONAL"


# --- resources the merge template adds -------------------------------------------------------------------


def test_the_table_has_the_keys_and_ttl_the_code_expects(packaged: Packaged) -> None:
    table = resources(packaged)["Table"]
    properties = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert "ResourcePolicy" in properties  # who may write: test_stack_safety.py
    # the audit trail outlives the stack
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_the_topic_is_encrypted(packaged: Packaged) -> None:
    topic = resources(packaged)["Topic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


def test_failed_iam_events_are_kept_in_the_queue(packaged: Packaged) -> None:
    # Lambda's async retries exhausted -> on-failure destination
    invoke = props(packaged, "OnIamEvent")["EventInvokeConfig"]
    assert invoke["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": FAILED_EVENTS_ARN}
    assert invoke["MaximumRetryAttempts"] == 2
    # EventBridge could not deliver at all -> the rule target's dead-letter queue
    name, event = _single_event(packaged, "OnIamEvent")
    assert event["Properties"]["DeadLetterConfig"] == {"Arn": FAILED_EVENTS_ARN}
    queue = resources(packaged)["FailedEvents"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    # only that rule may send to the queue: SAM names the rule <function><event>
    statement = resources(packaged)["FailedEventsPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [f"OnIamEvent{name}", "Arn"]}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_a_failed_sweep_is_kept_too(packaged: Packaged) -> None:
    destination = props(packaged, "Sweep")["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert destination == {"Type": "SQS", "Destination": FAILED_EVENTS_ARN}


def test_reserved_concurrency(packaged: Packaged) -> None:
    assert props(packaged, "OnIamEvent")["ReservedConcurrentExecutions"] == 5
    assert props(packaged, "Sweep")["ReservedConcurrentExecutions"] == 1  # sweeps never overlap
    assert "ReservedConcurrentExecutions" not in props(packaged, "APIHandler")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_resource_names_are_wired_into_every_function(packaged: Packaged, function: str) -> None:
    variables = props(packaged, function)["Environment"]["Variables"]
    assert variables["DEPUTY_GUARD_TABLE"] == {"Ref": "Table"}
    assert variables["DEPUTY_GUARD_SNS_TOPIC_ARN"] == {"Ref": "Topic"}
    assert variables["DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER"] == {"Ref": "SlackWebhookParameter"}
    assert variables["DEPUTY_GUARD_MODE"] == {"Ref": "Mode"}  # a stack parameter: test_stack_parameters.py
    # Each function has its own role: every function must recognise the echoes of all three
    roles = variables["DEPUTY_GUARD_SELF_ROLE_ARN"]["Fn::Join"]
    assert roles[0] == ","
    expected = ("OnIamEventRole", "SweepRole", "ApiHandlerRole", "ScanAccountRole")
    assert roles[1] == [{"Fn::GetAtt": [r, "Arn"]} for r in expected]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_logs_to_its_own_log_group(packaged: Packaged, function: str) -> None:
    # Chalice names the API handler's log group after "ApiHandler"; the merge template corrects it
    groups = [
        r["Properties"]["LogGroupName"] for r in resources(packaged).values() if r["Type"] == "AWS::Logs::LogGroup"
    ]
    assert {"Fn::Sub": f"/aws/lambda/${{{function}}}"} in groups


# --- the roles' policies -----------------------------------------------------------------------------------


def _roles(packaged: Packaged) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources(packaged).items() if r["Type"] == "AWS::IAM::Role"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("/deputy-guard/prod/slack-webhook", True),
        (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:deputy-guard/slack-AbCdEf", True),
        ("/aws/reference/secretsmanager/deputy-guard/slack", True),
        ("/prod/slack-webhook", False),
        ("/aws/reference/secretsmanager/prod/db-password", False),
        (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/slack-AbCdEf", False),
    ],
)
def test_the_webhook_parameter_accepts_only_what_the_policy_can_read(
    packaged: Packaged, bot_policy: PolicyEvaluator, value: str, accepted: bool
) -> None:
    parameter = packaged.template["Parameters"]["SlackWebhookParameter"]
    assert "Default" not in parameter  # a deployer says where the webhook is, or "" for none
    assert bool(re.fullmatch(parameter["AllowedPattern"], value)) is accepted
    if accepted and value.startswith("/"):
        assert bot_policy.allowed("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{value}")
        secret = value.removeprefix("/aws/reference/secretsmanager/")
        if secret != value:  # Parameter Store reads the secret with the caller's own permission
            arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-AbCdEf"
            assert bot_policy.allowed("secretsmanager:GetSecretValue", arn)
    elif accepted and value:
        assert bot_policy.allowed("secretsmanager:GetSecretValue", value)
