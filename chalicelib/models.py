"""Plain data shared by the engine, the service and the interfaces (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

PolicyDoc = dict[str, Any]

DEFAULT_SIZE_QUOTA = 2048
DEFAULT_SOURCE_ARN = "arn:{partition}:states:*:{account}:*"
SERVICE_LINKED_PATH = "/aws-service-role/"

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


@dataclass(frozen=True)
class Problem:
    """One finding: a stable code, the statement index (None for the whole document), one line of text."""

    code: ProblemCode
    statement: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "statement": self.statement, "message": self.message}


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
    # Templates for the aws:SourceArn values the fix adds; {partition} and {account} are filled in.
    source_arns: tuple[str, ...] = (DEFAULT_SOURCE_ARN,)


@dataclass(frozen=True)
class Evaluation:
    """The engine's answer for one trust policy: a verdict, its problems and, when fixable, the fix."""

    verdict: Verdict
    problems: tuple[Problem, ...] = ()
    original: PolicyDoc | None = None
    fixed_policy: PolicyDoc | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "problems": [p.to_dict() for p in self.problems],
            "fixed_policy": self.fixed_policy,
        }
