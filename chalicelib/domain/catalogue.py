"""The confused-deputy catalogue: the services AWS documents as sending aws:SourceArn/aws:SourceAccount (pure data).

One entry per service principal. A principal that is not here is out of scope: AWS documents no pin for it,
documents that it sends no keys, or pinning it is known to break the service. Each entry names the page that
says so; docs/services.md gives the reasoning behind every level and every principal left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "ALL_SERVICES",
    "CATALOGUE",
    "DEFAULT_SERVICES",
    "STATES",
    "Entry",
    "Level",
    "ServicesError",
    "entry_for_principal",
    "entry_named",
    "parse_services",
]


class Level(StrEnum):
    """What the bot may do about an entry's roles."""

    ENFORCE = "enforce"  # AWS documents the pin for the service's roles: the bot may write the fix
    ADVISE = "advise"  # documented with caveats: reported with a ready patch, never written by the bot


@dataclass(frozen=True, slots=True)
class Entry:
    """One service principal that assumes customer roles and sends the confused-deputy keys."""

    principal: str  # the global principal, e.g. scheduler.amazonaws.com (regional forms match too)
    label: str  # how people call the service, e.g. "EventBridge Scheduler"
    arn_prefix: str  # the service field of the aws:SourceArn it sends, not always the principal's (ec2)
    sends_source_account: bool
    level: Level
    evidence: str  # the AWS documentation page that documents the pin
    note: str  # one line: what the page says the source ARN is, and any caveat

    @property
    def name(self) -> str:
        """The short name (``scheduler``) that DEPUTY_GUARD_SERVICES and --services accept."""
        return self.principal.split(".", 1)[0]

    @property
    def source_arn_template(self) -> str:
        """The fix's aws:SourceArn: account-wide, as AWS's own wildcard examples are."""
        return f"arn:{{partition}}:{self.arn_prefix}:*:{{account}}:*"

    @property
    def sid_stem(self) -> str:
        """The stem of the Sid the fix gives this service's statement when it splits a mixed one."""
        return re.sub(r"[^A-Za-z0-9]", "", self.label)


STATES: Final = Entry(
    "states.amazonaws.com",
    "Step Functions",
    "states",
    True,
    Level.ENFORCE,
    "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html",
    "the guide's own wildcard arn:aws:states:*:ACCOUNT:* pins the account for every state machine",
)

CATALOGUE: Final[tuple[Entry, ...]] = (
    STATES,
    Entry(
        "scheduler.amazonaws.com",
        "EventBridge Scheduler",
        "scheduler",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html",
        "sends the schedule group's ARN (schedule-group/...), never a schedule's: pin the account, not a schedule",
    ),
    Entry(
        "vpc-flow-logs.amazonaws.com",
        "VPC Flow Logs",
        "ec2",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html",
        "sends the flow log's ARN, whose service field is ec2 (arn:aws:ec2:REGION:ACCOUNT:vpc-flow-log/ID)",
    ),
    Entry(
        "config.amazonaws.com",
        "AWS Config",
        "config",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/config/latest/developerguide/iamrole-permissions.html",
        "always sends an account-level ARN (arn:aws:config:REGION:ACCOUNT:*), never a recorder's or a rule's",
    ),
    Entry(
        "datasync.amazonaws.com",
        "DataSync",
        "datasync",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/datasync/latest/userguide/cross-service-confused-deputy-prevention.html",
        "sends the location's ARN, not the task's",
    ),
    Entry(
        "ssm-incidents.amazonaws.com",
        "Incident Manager",
        "ssm-incidents",
        False,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/incident-manager/latest/userguide/cross-service-confused-deputy-prevention.html",
        "sends the incident record's ARN, whose region field is empty (arn:aws:ssm-incidents::ACCOUNT:...)",
    ),
    Entry(
        "transfer.amazonaws.com",
        "Transfer Family",
        "transfer",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/transfer/latest/userguide/confused-deputy.html",
        "sends a user, server, workflow, connector or agreement ARN depending on the role: the account-wide pin "
        "covers them all",
    ),
    Entry(
        "personalize.amazonaws.com",
        "Amazon Personalize",
        "personalize",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/personalize/latest/dg/cross-service-confused-deputy-prevention.html",
        "the page's own trust-policy value is arn:aws:personalize:REGION:ACCOUNT:*",
    ),
    Entry(
        "iot.amazonaws.com",
        "AWS IoT",
        "iot",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/iot/latest/developerguide/cross-service-confused-deputy-prevention.html",
        "sends arn:aws:iot:REGION:ACCOUNT:... (Device Defender audits send an empty resource): the account-wide pin "
        "covers both",
    ),
    Entry(
        "bedrock.amazonaws.com",
        "Amazon Bedrock",
        "bedrock",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html",
        "service roles pin aws:SourceAccount and, optionally, the job's ARN (model-customization-job/*)",
    ),
    Entry(
        "transcribe.amazonaws.com",
        "Amazon Transcribe",
        "transcribe",
        True,
        Level.ENFORCE,
        "https://docs.aws.amazon.com/transcribe/latest/dg/security-iam-confused-deputy.html",
        "pinned in its own statement only: sharing one with Elastic Transcoder, which sends no keys, broke that",
    ),
    Entry(
        "events.amazonaws.com",
        "EventBridge",
        "events",
        True,
        Level.ADVISE,
        "https://docs.aws.amazon.com/eventbridge/latest/userguide/cross-service-confused-deputy-prevention.html",
        "sends the rule's ARN for rule targets; AWS warns that an aws:SourceAccount pin stopped EventBridge in some "
        "uses: verify before applying",
    ),
    Entry(
        "codedeploy.amazonaws.com",
        "CodeDeploy",
        "codedeploy",
        True,
        Level.ADVISE,
        "https://docs.aws.amazon.com/codedeploy/latest/userguide/security_confused_deputy.html",
        "sends the deployment group's ARN, but a CloudFormation stack's ARN for ECS blue/green deployments made by "
        "CloudFormation: a codedeploy pin breaks those",
    ),
    Entry(
        "sagemaker.amazonaws.com",
        "SageMaker AI",
        "sagemaker",
        True,
        Level.ADVISE,
        "https://docs.aws.amazon.com/sagemaker/latest/dg/security-confused-deputy-prevention.html",
        "the source ARN differs per feature (some send literal values): verify against the feature's section",
    ),
    Entry(
        "eks.amazonaws.com",
        "Amazon EKS",
        "eks",
        True,
        Level.ADVISE,
        "https://docs.aws.amazon.com/eks/latest/userguide/cross-service-confused-deputy-prevention.html",
        "accepted for the cluster role only since August 2025; earlier, pinning it failed",
    ),
    Entry(
        "cloudtrail.amazonaws.com",
        "CloudTrail",
        "cloudtrail",
        True,
        Level.ADVISE,
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html",
        "the CloudWatch Logs delivery role supports neither key and pinning it stops delivery; only CloudTrail Lake "
        "roles take the pin: never auto-pinned",
    ),
)

DEFAULT_SERVICES: Final = (STATES,)
ALL_SERVICES: Final = "all"

_BY_NAME: Final = {entry.name: entry for entry in CATALOGUE} | {entry.principal: entry for entry in CATALOGUE}
_BY_LABEL: Final = {entry.name: entry for entry in CATALOGUE}
# A global principal, a regional one (states.us-east-1.amazonaws.com) and the China partition's (.com.cn).
_PRINCIPAL: Final = re.compile(r"([a-z0-9-]+)(?:\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?", re.IGNORECASE)


class ServicesError(ValueError):
    """A DEPUTY_GUARD_SERVICES / --services value that names no catalogue entry; the message names it."""


def entry_for_principal(value: str, selection: Iterable[Entry] = CATALOGUE) -> Entry | None:
    """The selected entry a Principal.Service string names, in any of its forms; None when none does."""
    match = _PRINCIPAL.fullmatch(value)
    if match is None:
        return None
    entry = _BY_LABEL.get(match.group(1).lower())
    return entry if entry is not None and entry in selection else None


def entry_named(name: str) -> Entry | None:
    """The entry for a short name (``scheduler``) or a principal (``scheduler.amazonaws.com``)."""
    return _BY_NAME.get(name.strip().lower())


def entries_of(names: Iterable[str]) -> tuple[Entry, ...]:
    """The catalogue entries of ``names`` (short names or principals), unknown names left out."""
    return tuple(entry for name in names if (entry := entry_named(name)) is not None)


def parse_services(raw: str | None) -> tuple[Entry, ...]:
    """``states`` when unset; ``all``; or a comma-separated list of short names or principals, in catalogue order.

    Raises ServicesError naming the first unknown name.
    """
    text = (raw or "").strip()
    if not text:
        return DEFAULT_SERVICES
    if text.lower() == ALL_SERVICES:
        return CATALOGUE
    chosen: set[Entry] = set()
    for part in text.split(","):
        name = part.strip()
        if not name:
            raise ServicesError(f"an empty entry in {text!r}: write all, or service names separated by commas")
        entry = entry_named(name)
        if entry is None:
            raise ServicesError(
                f"{name!r} is not in the catalogue (deputy-guard services lists it): write all, or names such as "
                "states,scheduler"
            )
        chosen.add(entry)
    return tuple(entry for entry in CATALOGUE if entry in chosen)
