"""The demo's account: the roles it seeds (every case deputy-guard distinguishes) and CloudTrail-shaped events.

Shared by the single-account demo, the organization and approval steps, the end-to-end tests and the
benchmarks; it depends on nothing else in deputy-guard.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
BOT_ROLE = "deputy-guard-demo"
FOREIGN_ACCOUNT = "444455556666"


def _trust(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _states(condition: dict[str, Any] | None = None, service: Any = "states.amazonaws.com") -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return statement


@dataclass(frozen=True)
class SeedRole:
    name: str
    what: str
    document: dict[str, Any]
    path: str = "/"
    tags: dict[str, str] = field(default_factory=dict)
    event: str | None = None  # the CloudTrail event that announces it; None: the event was missed
    actor: str = "alice"


def seed_roles(account: str) -> list[SeedRole]:
    """A small account with every case deputy-guard distinguishes."""
    return [
        SeedRole(
            "orders-pipeline-sfn",
            "Step Functions role with no conditions",
            _trust([_states()]),
            tags={"owner": "payments-team"},
            event="CreateRole",
        ),
        SeedRole(
            "reporting-sfn",
            "partially protected: aws:SourceAccount only",
            _trust([_states({"StringEquals": {"aws:SourceAccount": account}})]),
            tags={"team": "analytics"},
            event="UpdateAssumeRolePolicy",
            actor="bob",
        ),
        SeedRole(
            "billing-sfn",
            "compliant, as in AWS's own example",
            _trust(
                [
                    _states(
                        {
                            "ArnLike": {"aws:SourceArn": f"arn:aws:states:{REGION}:{account}:stateMachine:*"},
                            "StringEquals": {"aws:SourceAccount": account},
                        },
                        service=["states.amazonaws.com"],
                    )
                ]
            ),
            event="CreateRole",
        ),
        SeedRole(
            "etl-mixed-sfn",
            "Lambda and Step Functions in one statement (split on fix)",
            {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    }
                ],
                "Version": "2012-10-17",
            },
            tags={"owner": "data-platform"},
            event="CreateRole",
        ),
        SeedRole(
            "partner-sfn",
            "a condition pins a foreign account (needs review)",
            _trust([_states({"StringEquals": {"aws:SourceAccount": FOREIGN_ACCOUNT}})]),
            tags={"owner": "partnerships"},
            event="UpdateAssumeRolePolicy",
            actor="bob",
        ),
        SeedRole(
            "legacy-batch-sfn",
            "vulnerable but centrally exempt (legacy-*)",
            _trust([_states()]),
            event="AttachRolePolicy",
        ),
        SeedRole(
            "orders-stack-sfn",
            "vulnerable, managed by CloudFormation (patch, no rewrite)",
            _trust([_states()]),
            tags={"aws:cloudformation:stack-name": "orders-prod", "owner": "payments-team"},
            event="CreateRole",
            actor="cloudformation",
        ),
        SeedRole(
            "fraud-check-sfn",
            "vulnerable, its owner opted out (tag deputy-guard:mode=exempt), then removes the tag",
            _trust([_states()]),
            tags={"owner": "risk-team", "deputy-guard:mode": "exempt"},
            event="CreateRole",
        ),
        SeedRole(
            "AWSServiceRoleForStepFunctionsDemo",
            "service-linked role (never touched)",
            _trust([_states()]),
            path="/aws-service-role/states.amazonaws.com/",
        ),
        SeedRole(
            "thumbnailer-lambda",
            "Lambda only (irrelevant: no AWS call)",
            _trust([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]),
            event="CreateRole",
        ),
        SeedRole(
            "nightly-report-sfn",
            "regional principal, its event was missed (the sweep finds it)",
            _trust([_states(service=f"states.{REGION}.amazonaws.com")]),
            tags={"contact": "reports@example.com"},
        ),
    ]


def _identity(account: str, who: str) -> dict[str, Any]:
    if who == "bob":
        return {
            "type": "IAMUser",
            "principalId": "AIDADEMOBOB000000001",
            "arn": f"arn:aws:iam::{account}:user/bob",
            "accountId": account,
            "accessKeyId": "AKIADEMOBOB000000001",
            "userName": "bob",
        }
    role = {
        "alice": "AWSReservedSSO_Admin_0123456789abcdef",
        "cloudformation": f"cdk-hnb659fds-cfn-exec-role-{account}-{REGION}",
        "deputy-guard": BOT_ROLE,
    }[who]
    session = {"alice": "alice@example.com", "cloudformation": "AWSCloudFormation", "deputy-guard": BOT_ROLE}[who]
    return {
        "type": "AssumedRole",
        "principalId": f"AROADEMO{who.upper()[:8]}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIADEMO000000000001",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROADEMO{who.upper()[:8]}",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2026-11-20T08:58:11Z", "mfaAuthenticated": "false"},
        },
    }


def seed_service_roles() -> list[SeedRole]:
    """Roles of services beyond Step Functions: enforce and advise level, out of scope, and mixed in one statement."""
    services = [
        ("nightly-schedule-role", "EventBridge Scheduler, no pins (enforce level)", "scheduler.amazonaws.com"),
        (
            "vpc-flow-logs-role",
            "VPC Flow Logs, no pins (enforce level; its source ARN is ec2's)",
            "vpc-flow-logs.amazonaws.com",
        ),
        (
            "trail-to-logs-role",
            "CloudTrail to CloudWatch Logs (advise level: pinning breaks delivery)",
            "cloudtrail.amazonaws.com",
        ),
        ("ci-runner-ec2", "EC2 (out of scope: AWS documents no pin)", "ec2.amazonaws.com"),
        (
            "secrets-rotation-role",
            "Secrets Manager (out of scope: AWS keeps it in the account)",
            "secretsmanager.amazonaws.com",
        ),
        (
            "transcoder-role",
            "Elastic Transcoder (out of scope: pinning it broke the role)",
            "elastictranscoder.amazonaws.com",
        ),
        (
            "ops-mixed-role",
            "Step Functions, Scheduler and EC2 in one statement",
            ["states.amazonaws.com", "scheduler.amazonaws.com", "ec2.amazonaws.com"],
        ),
    ]
    return [
        SeedRole(name, what, _trust([_states(service=service)]), event="CreateRole") for name, what, service in services
    ]


def cloudtrail_event(
    account: str,
    event_name: str,
    role_name: str,
    who: str,
    document: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """An EventBridge "AWS API Call via CloudTrail" event shaped like the ones IAM produces."""
    request: dict[str, Any] = {"roleName": role_name}
    if event_name == "CreateRole" and document is not None:
        request["assumeRolePolicyDocument"] = json.dumps(document, indent=2)
    elif event_name == "UpdateAssumeRolePolicy" and document is not None:
        request["policyDocument"] = json.dumps(document)
    elif event_name == "AttachRolePolicy":
        request["policyArn"] = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
    elif event_name == "UntagRole":
        request["tagKeys"] = ["deputy-guard:mode"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    detail: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": _identity(account, who),
        "eventTime": now,
        "eventSource": "iam.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.23" if who != "cloudformation" else "cloudformation.amazonaws.com",
        "userAgent": "aws-cli/2.22.4" if who != "cloudformation" else "cloudformation.amazonaws.com",
        "requestParameters": request,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error:
        detail["errorCode"] = error
        detail["errorMessage"] = f"User is not authorized to perform: iam:{event_name}"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": account,
        "time": now,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def scheduled_event(account: str, rule: str | None = None) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" that starts the sweep (``rule``: the schedule rule's name, if any)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{account}:rule/{rule}"] if rule else [],
        "detail": {},
    }
