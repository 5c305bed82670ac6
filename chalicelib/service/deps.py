"""What the services need, as small protocols: built by runtime.wiring, handed fakes by tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.adapters.errors import AwsError
from chalicelib.adapters.store import AuditTrail, Clock, SweepCursor, utc_now
from chalicelib.domain.models import (
    DEFAULT_SIZE_QUOTA,
    Notice,
    PolicyDoc,
    RoleRecord,
)
from chalicelib.domain.settings import Settings


class Iam(Protocol):
    """The IAM gateway as the service sees it (chalicelib.adapters.iam.IamGateway)."""

    def get_role(self, name: str) -> RoleRecord | None: ...

    def read_tags(self, role: RoleRecord) -> RoleRecord | None: ...

    def list_roles_page(self, *, path_prefix: str = "/", marker: str | None = None, max_items: int = 1000) -> Any: ...

    def list_role_details_page(self, *, marker: str | None = None, max_items: int = 1000) -> Any: ...

    def update_assume_role_policy(self, name: str, document: PolicyDoc) -> None: ...

    def tag_role(self, name: str, tags: Mapping[str, str]) -> None: ...

    def get_assume_role_policy_size_quota(self) -> int | None: ...


class Metrics(Protocol):
    def add_metric(self, name: str, value: float = 1) -> None: ...


class Notifier(Protocol):
    def notify(self, notice: Notice) -> Any: ...

    def notify_digest(self, owner: str, notices: Sequence[Notice]) -> Any: ...


class Logger(Protocol):
    def debug(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...

    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class SecurityHub(Protocol):
    """The Security Hub gateway as the service sees it (chalicelib.adapters.securityhub.SecurityHubGateway)."""

    def import_findings(self, findings: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]: ...

    def resolve_findings(
        self, identifiers: Sequence[Mapping[str, str]], note: str, author: str
    ) -> list[tuple[str, str]]: ...

    def list_active_finding_ids(self, product_arn: str, generator_id: str, ids: Sequence[str] = ()) -> set[str]: ...


@dataclass(frozen=True)
class FindingsHub:
    """Security Hub for the bot's own account: findings for any other account are not sent (the caller must
    be the finding's account for the ``default`` product)."""

    gateway: SecurityHub
    account: Callable[[], str]


class OnceGuard(Protocol):
    """Runs ``work`` at most once per key (Powertools Idempotency on DynamoDB in production)."""

    def run(self, key: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]: ...


@dataclass
class Deps:
    """What the service needs; built lazily by app.py and the CLI, handed in fakes by tests."""

    settings: Settings
    iam: Iam
    audit: AuditTrail
    notifier: Notifier | None
    logger: Logger
    metrics: Metrics
    region: str
    self_roles: Callable[[], frozenset[tuple[str, str]]] = frozenset
    once: OnceGuard | None = None
    cursor: SweepCursor | None = None
    clock: Clock = utc_now
    security_hub: FindingsHub | None = None  # DEPUTY_GUARD_SECURITY_HUB=true
    _quota: int | None = field(default=None, repr=False)

    def account_quota(self) -> int:
        """The trust-policy size quota: the setting, else the account's (read once), else 2,048."""
        if self.settings.size_quota is not None:
            return self.settings.size_quota
        if self._quota is None:
            try:
                self._quota = self.iam.get_assume_role_policy_size_quota() or DEFAULT_SIZE_QUOTA
            except AwsError as exc:
                self.logger.warning("size quota unreadable; using the default", extra={"error": str(exc)})
                self._quota = DEFAULT_SIZE_QUOTA
        return self._quota
