"""Plain data shared by the engine, the service and the interfaces (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry, Level, entries_of

PolicyDoc = dict[str, Any]

DEFAULT_SIZE_QUOTA = 2048
DEFAULT_SOURCE_ARN = "arn:{partition}:states:*:{account}:*"
SERVICE_LINKED_PATH = "/aws-service-role/"

# arn:{partition}:<states or *>:<region>:{account}:<resource>, no other placeholders.
_SOURCE_ARN_TEMPLATE = re.compile(r"^arn:\{partition\}:(?:states|\*):[^:{}]*:\{account\}:[^{}]+$")
_ROLE_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role(?P<rest>/.*)$")


class Verdict(StrEnum):
    """The contract's four verdicts, one per role."""

    COMPLIANT = "compliant"
    NOT_APPLICABLE = "not_applicable"
    NON_COMPLIANT = "non_compliant"
    NEEDS_REVIEW = "needs_review"


class Require(StrEnum):
    """Which confused-deputy keys an in-scope statement must pin."""

    BOTH = "both"
    EITHER = "either"


class ProblemCode(StrEnum):
    """Stable problem codes (contract): shown to people and matched by subscribers."""

    MISSING_SOURCE_ACCOUNT = "missing_source_account"
    MISSING_SOURCE_ARN = "missing_source_arn"
    FOREIGN_ACCOUNT = "foreign_account"
    PUBLIC_PRINCIPAL = "public_principal"
    NOT_PRINCIPAL = "not_principal"
    NOT_ACTION = "not_action"
    UNRESOLVED_VALUE = "unresolved_value"
    UNPARSEABLE = "unparseable"
    TOO_LARGE = "too_large"
    CANNOT_MERGE = "cannot_merge"
    INVALID_DOCUMENT = "invalid_document"
    DUPLICATE_KEYS = "duplicate_keys"
    UNUSABLE_PIN = "unusable_pin"
    ACCOUNT_UNKNOWN = "account_unknown"
    TAG_KEY_CASE = "tag_key_case"  # a control tag's key in another case: ignored, as IAM's conditions ignore it


@dataclass(frozen=True)
class Problem:
    """One finding: a stable code, the statement index (None for the whole document), one line of text."""

    code: ProblemCode
    statement: int | None
    message: str
    # The catalogue principal the problem is about (scheduler.amazonaws.com); None for the whole document.
    service: str | None = None

    def to_dict(self, *, with_service: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {"code": self.code.value, "statement": self.statement, "message": self.message}
        if with_service:
            row["service"] = self.service
        return row


@dataclass(frozen=True)
class RoleContext:
    """What the engine needs to know about the role that owns a trust policy."""

    account_id: str
    partition: str = "aws"
    path: str = "/"
    role_name: str = ""
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def service_linked(self) -> bool:
        return self.path.startswith(SERVICE_LINKED_PATH)

    @classmethod
    def from_role_arn(cls, arn: str, tags: Mapping[str, str] | None = None) -> RoleContext:
        """Build a context from a role ARN such as ``arn:aws:iam::111122223333:role/path/name``."""
        match = _ROLE_ARN.match(arn)
        if match is None:
            raise ValueError(f"not an IAM role ARN: {arn!r}")
        rest = match["rest"]
        path, _, name = rest.rpartition("/")
        return cls(
            account_id=match["account"],
            partition=match["partition"],
            path=(path or "") + "/",
            role_name=name,
            tags=MappingProxyType(dict(tags or {})),
        )


@dataclass(frozen=True)
class EngineOptions:
    """Knobs of the engine; defaults follow AWS's own confused-deputy example."""

    require: Require = Require.BOTH
    size_quota: int = DEFAULT_SIZE_QUOTA
    # Templates for the Step Functions aws:SourceArn values the fix adds; {partition} and {account} are filled in.
    source_arns: tuple[str, ...] = (DEFAULT_SOURCE_ARN,)
    # The catalogue entries in scope (DEPUTY_GUARD_SERVICES); every other service principal is left alone.
    services: tuple[Entry, ...] = DEFAULT_SERVICES

    def __post_init__(self) -> None:
        # A template that does not pin the role's account would make a fix that is itself
        # non-compliant, so bad options fail at construction instead of producing such fixes.
        if self.size_quota < 1:
            raise ValueError(f"size_quota must be a positive number of characters, not {self.size_quota}")
        if not self.source_arns:
            raise ValueError("source_arns must hold at least one ARN template")
        for template in self.source_arns:
            if not _SOURCE_ARN_TEMPLATE.match(template):
                raise ValueError(
                    f"source ARN template {template!r} must look like "
                    "arn:{partition}:states:REGION:{account}:RESOURCE (REGION and RESOURCE may use * and ?)"
                )


def auto_fixable(services: tuple[str, ...]) -> bool:
    """Whether the bot may write a fix for roles trusting ``services``: none of them is advise-level."""
    return all(entry.level is Level.ENFORCE for entry in entries_of(services))


@dataclass(frozen=True)
class Evaluation:
    """The engine's answer for one trust policy: a verdict, its problems and, when fixable, the fix."""

    verdict: Verdict
    problems: tuple[Problem, ...] = ()
    original: PolicyDoc | None = None
    fixed_policy: PolicyDoc | None = None
    # The selected principals some in-scope statement trusts, in catalogue order.
    services: tuple[str, ...] = ()
    # More than Step Functions is selected: the JSON adds each problem's service, ``services`` and ``auto_fix``.
    wide: bool = False

    @property
    def entries(self) -> tuple[Entry, ...]:
        return entries_of(self.services)

    @property
    def auto_fix(self) -> bool:
        """Whether the bot may write the fix: false when any in-scope service is an advise-level entry."""
        return auto_fixable(self.services)

    @property
    def advised(self) -> tuple[Entry, ...]:
        """The in-scope advise-level entries: why a fix is offered, not applied."""
        return tuple(entry for entry in self.entries if entry.level is Level.ADVISE)

    def to_dict(self, *, with_services: bool | None = None) -> dict[str, Any]:
        """The contract's object; ``services`` and ``auto_fix`` join it when more than Step Functions is selected."""
        with_services = self.wide if with_services is None else with_services
        body: dict[str, Any] = {
            "verdict": self.verdict.value,
            "problems": [p.to_dict(with_service=with_services) for p in self.problems],
            "fixed_policy": self.fixed_policy,
        }
        if with_services:
            body |= {"services": list(self.services), "auto_fix": self.auto_fix}
        return body


class Mode(StrEnum):
    """How the bot acts on a non-compliant role (contract: DEPUTY_GUARD_MODE and the role tag)."""

    DRY_RUN = "dry-run"
    NOTIFY = "notify"
    ENFORCE = "enforce"


class Action(StrEnum):
    """What the bot did (or would do) about one role; part of every report and notification."""

    NONE = "none"  # compliant or not applicable: nothing to do
    FIXED = "fixed"  # trust policy rewritten
    WOULD_FIX = "would_fix"  # dry run: a run with fixes would rewrite the trust policy
    NOTIFIED = "notified"  # notify mode (or a CloudFormation-managed role): owners told, patch attached
    WOULD_NOTIFY = "would_notify"  # dry run: a run with fixes would tell owners instead (mode tag, CloudFormation)
    CAPPED = "capped"  # the per-run fix cap was reached: owners told, fix left for the next run
    REVIEW = "review"  # needs_review: a human must decide
    EXEMPT = "exempt"  # exempted by tag or central list
    FAILED = "failed"  # the fix was attempted and AWS refused, or the audit store was unavailable
    SKIPPED = "skipped"  # role vanished or changed under us and needs nothing now
    REVERTED = "reverted"  # a recorded original was restored


@dataclass(frozen=True)
class RoleRecord:
    """A role as read from IAM: the trust document is kept as IAM returned it (possibly URL-encoded)."""

    name: str
    arn: str
    path: str
    document: PolicyDoc | str
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tags_loaded: bool = True  # False when read from ListRoles, which omits tags

    @property
    def account_id(self) -> str:
        return self.arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]

    def context(self) -> RoleContext:
        return RoleContext(
            account_id=self.account_id,
            partition=self.partition,
            path=self.path,
            role_name=self.name,
            tags=MappingProxyType(dict(self.tags)),
        )


NOTICE_SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class ActionButton:
    """A Slack button on a notice: ``action_id`` names what it does, ``value`` is the opaque token id it carries."""

    action_id: str
    label: str
    value: str
    style: str | None = None  # "primary" | "danger" | None (Slack's default look)
    confirm: str | None = None  # the question Slack asks before sending the click, if any


@dataclass(frozen=True)
class Notice:
    """Everything owners are told about one role; rendered by domain.render and render_slack."""

    account: str
    region: str
    role_name: str
    role_arn: str
    verdict: Verdict
    problems: tuple[Problem, ...]
    action: Action
    reason: str  # one line: why this action (mode, exemption, CloudFormation, cap, AWS error...)
    before: PolicyDoc | None
    after: PolicyDoc | None  # the applied fix, or the ready patch when not applied
    diff: str
    owner: str  # resolved owner (tag value, actor, or the default channel)
    actor: str | None  # who made the change that triggered this, from CloudTrail
    event_id: str | None
    time: str  # ISO 8601, UTC
    revert_command: str | None = None
    change_id: str | None = None
    trigger: str = "event"  # event | sweep | scan | api | slack
    # Approval buttons (Slack only; docs/slack.md): minted by the service, rendered by render_slack.
    buttons: tuple[ActionButton, ...] = ()
    # The guarded principals the role trusts: each one's evidence is linked in the message.
    services: tuple[str, ...] = ()

    @property
    def auto_fix(self) -> bool:
        return auto_fixable(self.services)
