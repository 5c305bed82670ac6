"""Which accounts deputy-guard guards, and the service's dependencies in each of them.

The bot's own account uses the bot's own credentials and Deps. Any other account in scope gets the same
Deps with three differences: IAM calls go through the member role (sts:AssumeRole, credentials cached per
account by the adapter), the sweep cursor is the account's own, and metrics carry the account. The audit
trail, the notification ledger, the idempotency records and the channels stay the central ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.adapters.store import SweepCursor
from chalicelib.domain.events import MEMBER_SESSION_NAME, RoleRef, Session, Skip, own_event, to_role_ref
from chalicelib.domain.names import valid_account_id
from chalicelib.domain.scope import AccountScope, ScopeKind, member_role_arn
from chalicelib.service.deps import Deps, Iam, Metrics
from chalicelib.service.enforce import run_ref
from chalicelib.service.skips import report_skip

# How long the organization's account list is trusted before organizations:ListAccounts is asked again.
ORG_ACCOUNTS_TTL_SECONDS = 300.0


class AccountOutOfScope(ValueError):
    """The account is not one deputy-guard guards (answered 400 over REST, skipped for events)."""


class AccountUnavailable(RuntimeError):
    """deputy-guard cannot act in the account: the member role could not be assumed or ListAccounts failed."""

    def __init__(self, account: str, cause: AwsError) -> None:
        super().__init__(f"account {account}: {cause}")
        self.account = account
        self.cause = cause


class AccountMetrics:
    """The central metrics, with the account attached to every flush and per-account failure counts.

    Cardinality stays flat: the usual metrics keep their single dimension set and carry the account as
    EMF metadata (queryable in Logs Insights, not a metric of its own); only ``add_account_metric``, used
    for failures, adds an ``account`` dimension, so metrics grow with broken accounts, not with the
    organization.
    """

    def __init__(self, inner: Metrics, account: str) -> None:
        self._inner = inner
        self.account = account

    def add_metric(self, name: str, value: float = 1) -> None:
        add_metadata = getattr(self._inner, "add_metadata", None)
        if add_metadata is not None:
            add_metadata("account", self.account)
        self._inner.add_metric(name, value)

    def add_account_metric(self, name: str, value: float = 1) -> None:
        """Count ``name`` both overall and with an ``account`` dimension."""
        self.add_metric(name, value)
        add_dimensioned = getattr(self._inner, "add_dimensioned_metric", None)
        if add_dimensioned is not None:
            add_dimensioned(name, {"account": self.account}, value)


class Accounts:
    """The scope (own account, an organization, or a list) and the Deps for each account in it."""

    def __init__(
        self,
        central: Deps,
        *,
        scope: AccountScope,
        member_role: str,
        own_identity: Callable[[], tuple[str, str]],
        list_org_accounts: Callable[[], tuple[str, ...]],
        member_iam: Callable[[str], Iam],
        cursor_for: Callable[[str], SweepCursor | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.central = central
        self.scope = scope
        self.member_role = member_role
        self._own_identity = own_identity
        self._list_org_accounts = list_org_accounts
        self._member_iam = member_iam
        self._cursor_for = cursor_for
        self._clock = clock
        self._lock = threading.Lock()
        self._identity: tuple[str, str] | None = None
        self._org: tuple[float, tuple[str, ...]] | None = None
        self._deps: dict[str, Deps] = {}

    # --- who and where --------------------------------------------------------------------------------

    def own_account(self) -> str:
        return self._own()[0]

    def partition(self) -> str:
        return self._own()[1]

    def _own(self) -> tuple[str, str]:
        with self._lock:
            if self._identity is None:
                self._identity = self._own_identity()
            return self._identity

    def role_arn(self, account: str) -> str:
        """The member role deputy-guard assumes in ``account``."""
        return member_role_arn(self.partition(), account, self.member_role)

    def accounts(self) -> tuple[str, ...]:
        """Every account in scope, the bot's own first (raises AwsError when ListAccounts fails)."""
        own = self.own_account()
        if self.scope.kind is ScopeKind.SELF:
            return (own,)
        listed = self.scope.accounts if self.scope.kind is ScopeKind.LIST else self._organization()
        return (own, *(account for account in listed if account != own))

    def _organization(self) -> tuple[str, ...]:
        with self._lock:
            cached = self._org
        if cached is not None and self._clock() - cached[0] < ORG_ACCOUNTS_TTL_SECONDS:
            return cached[1]
        found = self._list_org_accounts()
        with self._lock:
            self._org = (self._clock(), found)
        return found

    def in_scope(self, account: str) -> bool:
        """Whether deputy-guard guards ``account``. A listed id is answered without any AWS call."""
        if not valid_account_id(account):
            return False
        if self.scope.kind is ScopeKind.LIST and account in self.scope.accounts:
            return True
        if account == self.own_account():
            return True
        return self.scope.kind is ScopeKind.ORG and account in self._organization()

    def check(self, account: str) -> None:
        """Raise AccountOutOfScope unless ``account`` is in scope."""
        if not self.in_scope(account):
            raise AccountOutOfScope(f"account {account} is not in deputy-guard's scope ({self.scope.describe()})")

    def is_self(self, session: Session) -> bool:
        """Whether deputy-guard started the session that made a call (its echoes are skipped).

        Its own function roles in its own account; or the member role in another account in scope, under the
        bot's session name, in an account where the bot can assume it (the role trusts the function roles).
        A role merely named like the member role (in the bot's own account, out of scope, or one the bot
        cannot assume) is anyone's: its changes are handled like any other.
        """
        if session.issuer in self.central.self_roles():
            return True
        if not self.scope.multi_account or session.role != self.member_role or session.name != MEMBER_SESSION_NAME:
            return False
        if session.account == self.own_account() or not self.in_scope(session.account):
            return False
        try:
            self.deps_for(session.account)
        except AccountUnavailable:
            return False
        return True

    # --- dependencies ---------------------------------------------------------------------------------

    def deps_for(self, account: str) -> Deps:
        """The Deps acting in ``account`` (the member role for another account); cached per account.

        Raises AccountUnavailable when the member role cannot be assumed.
        """
        with self._lock:
            cached = self._deps.get(account)
        if cached is not None:
            return cached
        own = account == self.own_account()
        try:
            iam = self.central.iam if own else self._member_iam(self.role_arn(account))
        except AwsError as exc:
            self.central.logger.error(
                "cannot act in account: the member role was refused",
                extra={"account": account, "role_arn": self.role_arn(account), "error": str(exc)},
            )
            AccountMetrics(self.central.metrics, account).add_account_metric("AccountUnavailable")
            raise AccountUnavailable(account, exc) from exc
        # The echo test for another account's events is is_self (above), before these Deps are asked.
        deps = replace(
            self.central,
            iam=iam,
            metrics=AccountMetrics(self.central.metrics, account),
            cursor=self._cursor_for(account),
            _quota=self.central._quota if own else None,
        )
        with self._lock:
            return self._deps.setdefault(account, deps)


def handle_account_event(event: Mapping[str, Any], accounts: Accounts) -> dict[str, Any]:
    """An EventBridge event from any account: parsed once into its role reference, then ``handle_account_ref``."""
    central = accounts.central
    parsed = to_role_ref(event, services=central.settings.services)
    if isinstance(parsed, Skip):
        return report_skip(parsed, central.logger, central.metrics)
    return handle_account_ref(parsed, accounts)


def handle_account_ref(parsed: RoleRef, accounts: Accounts) -> dict[str, Any]:
    """A role reference from any account: skip it when out of scope (no AWS call), else the usual pipeline."""
    central = accounts.central
    own = own_event(parsed, accounts.is_self)
    if own is not None:
        return report_skip(own, central.logger, central.metrics)
    account = parsed.account
    if not accounts.in_scope(account):
        central.metrics.add_metric("EventsSkipped")
        central.metrics.add_metric("EventsOutOfScope")
        central.logger.info(
            "event skipped",
            extra={
                "reason": "out_of_scope",
                "account": account,
                "event_id": parsed.event_id,
                "event_name": parsed.event_name,
            },
        )
        return {"status": "skipped", "reason": "out_of_scope", "event_id": parsed.event_id, "account": account}
    with account_log_key(central.logger, account):
        # The same reference, with the account's Deps; the echo test above (is_self) already covered it.
        return run_ref(parsed, accounts.deps_for(account))


@contextmanager
def account_log_key(logger: Any, account: str) -> Iterator[None]:
    """Every log line written meanwhile names the account (Powertools Logger keys; other loggers unchanged)."""
    append = getattr(logger, "append_keys", None)
    if append is None:
        yield
        return
    append(account=account)
    try:
        yield
    finally:
        logger.remove_keys(["account"])
