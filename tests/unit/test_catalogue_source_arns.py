"""Each catalogue entry's fix matches the aws:SourceArn its service documents sending, traps included.

The ARNs below are the shapes each entry's evidence page gives (a schedule group's, a flow log's under the
``ec2`` prefix, Config's account-level ARN, a DataSync location's, an Incident Manager record's with an
empty region, an IoT Device Defender audit's with an empty resource). A fix whose pattern did not match them
would stop the service from assuming its role.
"""

from __future__ import annotations

import pytest

from chalicelib.domain.catalogue import CATALOGUE, Entry
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import EngineOptions, RoleContext, Verdict
from chalicelib.domain.policy import statement_list
from chalicelib.domain.wildcard import wildcard_match

ACCOUNT = "111122223333"
OTHER = "444455556666"
CTX = RoleContext(account_id=ACCOUNT)
ALL = EngineOptions(services=CATALOGUE)

# principal -> source ARNs the service's evidence page documents it sending, for the role's own account
SENT: dict[str, tuple[str, ...]] = {
    "states.amazonaws.com": ("arn:aws:states:us-east-1:{a}:stateMachine:orders",),
    "scheduler.amazonaws.com": ("arn:aws:scheduler:us-east-1:{a}:schedule-group/default",),
    "vpc-flow-logs.amazonaws.com": ("arn:aws:ec2:eu-west-1:{a}:vpc-flow-log/fl-0123456789abcdef0",),
    "config.amazonaws.com": ("arn:aws:config:us-east-1:{a}:*",),
    "datasync.amazonaws.com": ("arn:aws:datasync:us-east-2:{a}:location/loc-0123456789abcdef0",),
    "ssm-incidents.amazonaws.com": ("arn:aws:ssm-incidents::{a}:incident-record/myresponseplan/0cc4f5b1",),
    "transfer.amazonaws.com": (
        "arn:aws:transfer:us-east-1:{a}:user/s-01234567890abcdef/alice",
        "arn:aws:transfer:us-east-1:{a}:server/s-01234567890abcdef",
        "arn:aws:transfer:us-east-1:{a}:workflow/w-01234567890abcdef",
    ),
    "personalize.amazonaws.com": ("arn:aws:personalize:us-east-1:{a}:dataset-group/orders",),
    "iot.amazonaws.com": ("arn:aws:iot:us-east-1:{a}:rule/orders", "arn:aws:iot:us-east-1:{a}:"),
    "bedrock.amazonaws.com": ("arn:aws:bedrock:us-east-1:{a}:model-customization-job/abc123",),
    "transcribe.amazonaws.com": ("arn:aws:transcribe:us-east-1:{a}:transcription-job/orders",),
    "events.amazonaws.com": ("arn:aws:events:us-east-1:{a}:rule/orders",),
    "codedeploy.amazonaws.com": ("arn:aws:codedeploy:us-east-1:{a}:deploymentgroup:orders/blue-green",),
    "sagemaker.amazonaws.com": ("arn:aws:sagemaker:us-east-1:{a}:notebook-instance/orders",),
    "eks.amazonaws.com": ("arn:aws:eks:us-east-1:{a}:cluster/prod",),
    "cloudtrail.amazonaws.com": ("arn:aws:cloudtrail:us-east-1:{a}:eventdatastore/EXAMPLE-f852-4e8f-8bd1",),
}


def arn_like(pattern: str, value: str) -> bool:
    """IAM's ArnLike: each of the six colon-separated fields matched on its own, the last taking the rest."""
    patterns, values = pattern.split(":", 5), value.split(":", 5)
    return len(patterns) == len(values) == 6 and all(
        wildcard_match(part, text) for part, text in zip(patterns, values, strict=True)
    )


def ids(entry: Entry) -> str:
    return entry.name


def test_every_entry_has_its_documented_source_arns_here() -> None:
    assert set(SENT) == {entry.principal for entry in CATALOGUE}


@pytest.mark.parametrize("entry", CATALOGUE, ids=ids)
def test_the_fix_matches_what_the_service_sends_and_not_another_account(entry: Entry) -> None:
    fixed = evaluate(
        {"Statement": [{"Effect": "Allow", "Principal": {"Service": entry.principal}, "Action": "sts:AssumeRole"}]},
        CTX,
        ALL,
    ).fixed_policy
    assert fixed is not None
    pattern = statement_list(fixed)[0]["Condition"]["ArnLike"]["aws:SourceArn"]
    for sent in SENT[entry.principal]:
        assert arn_like(pattern, sent.format(a=ACCOUNT)), (pattern, sent)
        assert not arn_like(pattern, sent.format(a=OTHER)), (pattern, sent)


@pytest.mark.parametrize("entry", CATALOGUE, ids=ids)
def test_a_role_pinned_to_exactly_what_the_service_sends_is_compliant(entry: Entry) -> None:
    for sent in SENT[entry.principal]:
        condition = {"ArnEquals": {"aws:SourceArn": sent.format(a=ACCOUNT)}}
        if entry.sends_source_account:
            condition["StringEquals"] = {"aws:SourceAccount": ACCOUNT}
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": entry.principal},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }
        evaluation = evaluate({"Version": "2012-10-17", "Statement": [statement]}, CTX, ALL)
        assert evaluation.verdict is Verdict.COMPLIANT, (sent, evaluation.problems)


def test_a_cross_account_log_destination_role_is_never_judged() -> None:
    # CloudWatch Logs sends the sender's account for a cross-account destination: an own-account pin breaks it.
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringLike": {"aws:SourceArn": [f"arn:aws:logs:us-east-1:{OTHER}:*"]}},
    }
    evaluation = evaluate({"Version": "2012-10-17", "Statement": [statement]}, CTX, ALL)
    assert evaluation.verdict is Verdict.NOT_APPLICABLE
    assert evaluation.fixed_policy is None
