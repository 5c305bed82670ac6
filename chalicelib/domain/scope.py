"""Pure: which accounts deputy-guard guards (DEPUTY_GUARD_ACCOUNTS) and the role it assumes in them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from chalicelib.domain.names import valid_account_id, valid_role_name

# The role deputy-guard assumes in every member account (a name operators and the member template rely on).
DEFAULT_MEMBER_ROLE: Final = "deputy-guard-member"
ORG_SCOPE: Final = "org"


class ScopeKind(StrEnum):
    SELF = "self"  # unset: the bot's own account only, as in a single-account deployment
    ORG = "org"  # every ACTIVE account of the organization (organizations:ListAccounts)
    LIST = "list"  # the listed account ids


class ScopeError(ValueError):
    """A scope or member-role value deputy-guard cannot use; the message says why."""


@dataclass(frozen=True)
class AccountScope:
    """The accounts in scope. The bot's own account is always in scope: it is where the bot runs."""

    kind: ScopeKind = ScopeKind.SELF
    accounts: tuple[str, ...] = ()  # the listed ids (LIST only), in the order given, without duplicates

    @property
    def multi_account(self) -> bool:
        return self.kind is not ScopeKind.SELF

    def describe(self) -> str:
        if self.kind is ScopeKind.SELF:
            return "this account only"
        if self.kind is ScopeKind.ORG:
            return "every active account of the organization"
        return f"{len(self.accounts)} listed account(s)"


def parse_scope(raw: str | None) -> AccountScope:
    """``None``/empty: own account; ``org``; or comma-separated 12-digit ids. Raises ScopeError otherwise."""
    text = (raw or "").strip()
    if not text:
        return AccountScope()
    if text.lower() == ORG_SCOPE:
        return AccountScope(ScopeKind.ORG)
    seen: list[str] = []
    for part in text.split(","):
        value = part.strip()
        if not value:
            raise ScopeError(f"an empty entry in {text!r}: write org, or 12-digit account ids separated by commas")
        if not valid_account_id(value):
            raise ScopeError(f"{value!r} is not a 12-digit account id (write org, or ids separated by commas)")
        if value not in seen:
            seen.append(value)
    return AccountScope(ScopeKind.LIST, tuple(seen))


def parse_member_role(raw: str | None) -> str:
    """The member role's name (default ``deputy-guard-member``); raises ScopeError for a name IAM refuses."""
    name = (raw or "").strip() or DEFAULT_MEMBER_ROLE
    if not valid_role_name(name):
        raise ScopeError(f"{name!r} is not an IAM role name (1-64 letters, digits and +=,.@_-)")
    return name


def member_role_arn(partition: str, account: str, role_name: str) -> str:
    """``arn:PARTITION:iam::ACCOUNT:role/ROLE``: the role deputy-guard assumes in ``account``."""
    return f"arn:{partition}:iam::{account}:role/{role_name}"
