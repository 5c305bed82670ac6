"""A moto-backed account for the enforcement tests: real gateways, real audit table, recorded notices."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters import aws
from chalicelib.adapters.store import AuditTrail
from chalicelib.domain.models import Notice
from chalicelib.domain.settings import load_settings
from chalicelib.runtime.wiring import CountingMetrics, build_deps
from chalicelib.service.deps import Deps
from tests.documents import ACCOUNT, COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE
from tests.reliability.support import Faults, WriteGuard

EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
__all__ = [
    "ACCOUNT",
    "COMPLIANT",
    "FOREIGN",
    "LAMBDA_ONLY",
    "VULNERABLE",
    "World",
    "deny_authorization_details",
    "load_event",
    "make_world",
]


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@dataclass
class RecordingNotifier:
    """Stands in for chalicelib.service.notifier.Notifier: records what the service asked to announce."""

    single: list[Notice] = field(default_factory=list)
    digests: list[tuple[str, list[Notice]]] = field(default_factory=list)

    def notify(self, notice: Notice) -> None:
        self.single.append(notice)

    def notify_digest(self, owner: str, notices: Sequence[Notice]) -> None:
        self.digests.append((owner, list(notices)))

    @property
    def all(self) -> list[Notice]:
        return self.single + [n for _owner, notices in self.digests for n in notices]


@dataclass
class World:
    iam: Any
    deps: Deps
    notifier: RecordingNotifier
    calls: Counter[str]
    guard: WriteGuard  # checks every trust-policy write: recorded first, only narrowing (or a recorded revert)

    def create_role(
        self, name: str, document: dict[str, Any] | None = None, *, path: str = "/", tags: dict[str, str] | None = None
    ) -> str:
        response = self.iam.create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(document if document is not None else VULNERABLE),
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
        return str(response["Role"]["Arn"])

    def trust(self, name: str) -> dict[str, Any]:
        document = self.iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        return json.loads(document) if isinstance(document, str) else copy.deepcopy(document)

    def tags(self, name: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.iam.get_role(RoleName=name)["Role"].get("Tags", [])}

    def audit(self) -> AuditTrail:
        return self.deps.audit

    def aws_calls(self, service: str | None = None) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if service is None or k.startswith(service + ".")}


def count_calls(calls: Counter[str]) -> Callable[..., None]:
    def before_call(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    return before_call


def make_signing_key() -> str:
    """A KMS HMAC key in the current (mocked) account, as the stack creates for the bot; its key id."""
    key = boto3.client("kms", region_name="us-east-1").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    return str(key["KeyMetadata"]["KeyId"])


def deny_authorization_details() -> Faults:
    """IAM refuses the bot GetAccountAuthorizationDetails (a role granted only the older read permissions).

    Scans then list with ListRoles and read a flagged role's tags on their own: the path these tests pin.
    Call after the world is built (the fault sits on the bot's IAM client).
    """
    faults = Faults()
    faults.inject("iam", "GetAccountAuthorizationDetails", "AccessDenied", status=403)
    return faults


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    """Build an account with the given DEPUTY_GUARD_* settings (env-style strings)."""
    with mock_aws():
        aws.reset_clients()
        guards: list[WriteGuard] = []

        def build(idempotent: bool = True, **env: str) -> World:
            if "signing_key" not in env:
                # The deployed bot always signs its audit records (the stack's HMAC key); so does this account.
                env["signing_key"] = make_signing_key()
            settings = load_settings({f"DEPUTY_GUARD_{k.upper()}": v for k, v in env.items()})
            aws.DynamoTable(aws.make_client("dynamodb"), settings.table).ensure_exists()
            calls: Counter[str] = Counter()
            for service in ("iam", "dynamodb", "sts", "sns", "kms"):
                aws.make_client(service).meta.events.register("before-call.*.*", count_calls(calls))
            guard = WriteGuard(settings.table).install()
            guards.append(guard)
            notifier = RecordingNotifier()
            deps = build_deps(settings, metrics=CountingMetrics(), idempotent=idempotent)
            deps.notifier = notifier
            deps.self_roles = lambda: frozenset({(ACCOUNT, "deputy-guard-prod")})
            return World(
                iam=boto3.client("iam", region_name="us-east-1"), deps=deps, notifier=notifier, calls=calls, guard=guard
            )

        yield build
        # Every trust-policy write any of these tests made was recorded first and only narrowed access.
        violations = [v for guard in guards for v in guard.violations]
        aws.reset_clients()
        assert violations == [], violations
