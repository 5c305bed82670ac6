"""Slack approval tokens in the deputy-guard table: one item per button, single use by a conditional write.

Layout: ``pk = approval#<token id>``, ``sk = token``. ``expires_at`` is when the button stops working
(checked on every use); ``expiration`` is the table's TTL attribute, a day later, so DynamoDB deletes the
item afterwards (TTL deletion is lazy: it is never what makes a token expire).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chalicelib.adapters.errors import ConditionFailed
from chalicelib.domain.slack_actions import ApprovalToken, MessageKind

APPROVAL_PK_PREFIX = "approval#"
APPROVAL_SK = "token"
# How long an expired token is kept, so a late click is told "expired" rather than "unknown".
EXPIRED_KEPT_SECONDS = 24 * 3600


class TokenTable(Protocol):
    """What the token store needs of a table (chalicelib.adapters.aws.DynamoTable provides it)."""

    def put(
        self, item: Mapping[str, Any], *, condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> None: ...

    def update(
        self,
        pk: str,
        sk: str,
        changes: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None: ...

    def query(
        self, pk: str, *, sk_prefix: str = "", newest_first: bool = True, limit: int = 100
    ) -> list[dict[str, Any]]: ...


class DynamoTokenStore:
    """Approval tokens: written when a message is sent, used at most once when a button is clicked."""

    def __init__(self, table: TokenTable) -> None:
        self._table = table

    def put(self, token: ApprovalToken) -> None:
        """Store a new token; raises AwsError when the table is unavailable."""
        self._table.put(
            {
                "pk": APPROVAL_PK_PREFIX + token.token_id,
                "sk": APPROVAL_SK,
                "action": token.action,
                "account": token.account,
                "role_name": token.role_name,
                "role_arn": token.role_arn,
                "document_digest": token.document_digest,
                "plan_digest": token.plan_digest,
                "expires_at": token.expires_at,
                "created_at": token.created_at,
                "message": token.message.value,
                "change_id": token.change_id,
                "used": False,
                "expiration": token.expires_at + EXPIRED_KEPT_SECONDS,
            },
            # 192 random bits never collide; if they ever did, the older token must not be overwritten.
            condition="attribute_not_exists(pk)",
        )

    def get(self, token_id: str) -> ApprovalToken | None:
        """The token (a strongly consistent read), or None when there is none."""
        items = self._table.query(APPROVAL_PK_PREFIX + token_id, sk_prefix=APPROVAL_SK, limit=1)
        return _token(token_id, items[0]) if items else None

    def consume(self, token_id: str, actor: str, now: int) -> bool:
        """Mark the token used by ``actor``; False when it is used, expired or gone (nothing is written then).

        One conditional write: of any number of concurrent clicks, exactly one succeeds.
        """
        try:
            self._table.update(
                APPROVAL_PK_PREFIX + token_id,
                APPROVAL_SK,
                {"used": True, "used_by": actor, "used_at": now},
                condition="#used = :unused AND #expires > :now",
                names={"#used": "used", "#expires": "expires_at"},
                values={":unused": False, ":now": now},
            )
        except ConditionFailed:
            return False
        return True

    def record_outcome(self, token_id: str, outcome: str) -> None:
        """What the click did (``fixed``, ``exempt``, ``reverted``, ``failed``…), kept with the token as evidence."""
        self._table.update(APPROVAL_PK_PREFIX + token_id, APPROVAL_SK, {"outcome": outcome[:200]})


def _token(token_id: str, item: Mapping[str, Any]) -> ApprovalToken:
    used_at = item.get("used_at")
    return ApprovalToken(
        token_id=token_id,
        action=str(item.get("action", "")),
        account=str(item.get("account", "")),
        role_name=str(item.get("role_name", "")),
        role_arn=str(item.get("role_arn", "")),
        document_digest=str(item.get("document_digest", "")),
        plan_digest=str(item.get("plan_digest", "")),
        expires_at=int(item.get("expires_at", 0)),
        created_at=int(item.get("created_at", 0)),
        message=MessageKind.DIGEST if item.get("message") == MessageKind.DIGEST.value else MessageKind.ROLE,
        change_id=item.get("change_id"),
        used=bool(item.get("used", False)),
        used_by=item.get("used_by"),
        used_at=int(used_at) if used_at is not None else None,
    )
