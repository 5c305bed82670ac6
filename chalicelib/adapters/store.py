"""Write-ahead audit trail of every trust-policy change, and the notification ledger.

Layout in the single table (``pk``/``sk`` strings, TTL attribute ``expiration``):

* ``pk = role#<role arn>``, ``sk = change#<UTC time>#<change id>``: one item per change, written
  *before* the change with status ``pending`` (the original document first, then the new one), and
  updated to ``applied``, ``failed``, ``superseded`` or ``reverted`` afterwards. Never expires.
* ``pk = notice#<fingerprint>``, ``sk = notice``: the notification ledger (expires after the window).
* Powertools Idempotency records live under ``pk = idempotency#deputy-guard``.
* Slack approval tokens: ``pk = approval#<token id>``, ``sk = token`` (chalicelib.adapters.tokens).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.adapters.errors import AccessDenied
from chalicelib.adapters.signing import RecordSigner
from chalicelib.domain import jsontext
from chalicelib.domain.models import PolicyDoc
from chalicelib.domain.policy import to_compact_json
from chalicelib.domain.settings import SettingsError

IDEMPOTENCY_PK = "idempotency#deputy-guard"
# The stack creates the table and the signing key together; `deputy-guard setup` creates the key after the table.
# A table created later than this after the key is a replacement, not the table the stack created.
TABLE_KEY_WINDOW = timedelta(hours=1)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Table(Protocol):
    """What the audit trail needs of a table (chalicelib.adapters.aws.DynamoTable provides it)."""

    def put(
        self, item: Mapping[str, Any], *, condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> None: ...

    def update(self, pk: str, sk: str, changes: Mapping[str, Any]) -> None: ...

    def delete(self, pk: str, sk: str) -> None: ...

    def query(
        self, pk: str, *, sk_prefix: str = "", newest_first: bool = True, limit: int = 100
    ) -> list[dict[str, Any]]: ...


class TableNotTrusted(SettingsError):
    """The audit table is not the one deputy-guard's stack created (deleted and re-created under its name)."""


def table_origin_problem(table: str, table_created: datetime, key_created: datetime) -> str | None:
    """Why ``table`` is not the stack's own, judged by its age against the signing key's (None: it is).

    Its ARN is no proof (a table re-created under the same name has the same ARN); its records are none either
    (a replacement is as empty as a new install). Its creation time is: nobody can re-create a table in the past.
    """
    if table_created <= key_created + TABLE_KEY_WINDOW:
        return None
    return (
        f"the audit table {table!r} was created on {table_created.isoformat(timespec='seconds')}, after the signing "
        f"key ({key_created.isoformat(timespec='seconds')}): it is not the table deputy-guard's stack created (it was "
        "deleted and created again), so deputy-guard will not use it (docs/security.md)"
    )


class ChangeKind(StrEnum):
    FIX = "fix"
    REVERT = "revert"
    EXEMPT = "exempt"  # tagged exempt (Slack, the CLI): the document is unchanged (before == after)
    UNEXEMPT = "unexempt"  # the exempt tags removed (the CLI only): the document is unchanged


class ChangeStatus(StrEnum):
    PENDING = "pending"  # recorded, not yet applied (or the bot stopped mid-way: check the role)
    APPLIED = "applied"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # the role changed before the write; nothing was written
    REVERTED = "reverted"  # an applied fix that a later revert undid


@dataclass(frozen=True)
class ChangeRecord:
    change_id: str
    role_arn: str
    role_name: str
    kind: ChangeKind
    status: ChangeStatus
    before: PolicyDoc
    after: PolicyDoc
    actor: str | None
    event_id: str | None
    mode: str
    trigger: str
    reason: str
    created_at: str
    sk: str
    error: str | None = None
    reverts: str | None = None
    # The item as stored, signature included: what verification checks (never the parsed fields above).
    item: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pk(self) -> str:
        return role_pk(self.role_arn)


def role_pk(role_arn: str) -> str:
    return f"role#{role_arn}"


UNSIGNED_TRAIL = "deputy-guard has no signing key (DEPUTY_GUARD_SIGNING_KEY), so no record can be verified"


class AuditTrail:
    """Records each change before it happens, and its outcome after; signs each record with ``signer``."""

    def __init__(self, table: Table, clock: Clock = utc_now, *, signer: RecordSigner | None = None) -> None:
        self._table = table
        self._clock = clock
        self._signer = signer

    def problem(self, record: ChangeRecord) -> str | None:
        """Why ``record`` cannot be trusted as the bot's own (unsigned, another key, altered); None if it verifies."""
        if self._signer is None:
            return UNSIGNED_TRAIL
        if record.item.get("pk") != role_pk(str(record.item.get("role_arn"))):
            # A signed record copied under another role's key would otherwise verify.
            return "it is filed under another role than the one it names"
        return self._signer.problem(record.item)

    def record_intent(
        self,
        *,
        role_arn: str,
        role_name: str,
        before: PolicyDoc,
        after: PolicyDoc,
        kind: ChangeKind,
        actor: str | None,
        event_id: str | None,
        mode: str,
        trigger: str,
        reason: str,
        reverts: str | None = None,
        unsigned_if_refused: bool = False,
    ) -> ChangeRecord:
        """Write the pending record; raises chalicelib.adapters.aws.AwsError when the store is unavailable.

        ``unsigned_if_refused``: when the key refuses to sign (the caller is not one of the bot's roles), write the
        record unsigned instead of refusing; only for records no revert ever acts on (a revert's own record).
        """
        now = self._clock().isoformat(timespec="microseconds")
        change_id = uuid.uuid4().hex
        record = ChangeRecord(
            change_id=change_id,
            role_arn=role_arn,
            role_name=role_name,
            kind=kind,
            status=ChangeStatus.PENDING,
            before=before,
            after=after,
            actor=actor,
            event_id=event_id,
            mode=mode,
            trigger=trigger,
            reason=reason,
            created_at=now,
            sk=f"change#{now}#{change_id}",
            reverts=reverts,
        )
        item: dict[str, Any] = {
            "pk": record.pk,
            "sk": record.sk,
            "change_id": change_id,
            "role_arn": role_arn,
            "role_name": role_name,
            "account": role_arn.split(":")[4] if role_arn.count(":") >= 5 else None,
            "kind": kind.value,
            "status": record.status.value,
            "before": _dump(before),
            "after": _dump(after),
            "actor": actor,
            "event_id": event_id,
            "mode": mode,
            "trigger": trigger,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
            "reverts": reverts,
        }
        if self._signer is not None:
            # Signed before the write: a record the key cannot sign is never written, so the change never happens.
            try:
                item.update(self._signer.sign(item))
            except AccessDenied:
                if not unsigned_if_refused:
                    raise
        self._table.put(item, condition="attribute_not_exists(pk)")
        record = replace(record, item=item)
        return record

    def record_outcome(self, record: ChangeRecord, status: ChangeStatus, error: str | None = None) -> None:
        """Mark a recorded change applied, failed, superseded or reverted."""
        changes: dict[str, Any] = {"status": status.value, "updated_at": self._clock().isoformat()}
        if error is not None:
            changes["error"] = error[:1000]
        self._table.update(record.pk, record.sk, changes)

    def history(self, role_arn: str, limit: int = 50) -> list[ChangeRecord]:
        """The role's changes, newest first."""
        items = self._table.query(role_pk(role_arn), sk_prefix="change#", newest_first=True, limit=limit)
        return [_record(item) for item in items]

    def last_applied_fix(self, role_arn: str, current: PolicyDoc | None = None) -> ChangeRecord | None:
        """The newest fix the bot applied and nobody reverted yet.

        A fix still ``pending`` counts when the role holds exactly its new document (``current``): the
        write happened and only its outcome went unrecorded (the store failed in between).
        """
        for record in self.history(role_arn, limit=100):
            if record.kind is not ChangeKind.FIX:
                continue
            if record.status is ChangeStatus.APPLIED:
                return record
            if record.status is ChangeStatus.PENDING and current is not None and record.after == current:
                return record
        return None


SWEEP_CURSOR_PK = "sweep#cursor"


class SweepCursor:
    """Where an unfinished sweep stopped, so the next scheduled run resumes there.

    One cursor per account in an organization sweep (``pk = sweep#cursor#<account>``); the single-account
    sweep keeps ``sweep#cursor``.
    """

    def __init__(self, table: Table, clock: Clock = utc_now, *, account: str | None = None) -> None:
        self._table = table
        self._clock = clock
        self._pk = f"{SWEEP_CURSOR_PK}#{account}" if account else SWEEP_CURSOR_PK

    def load(self) -> str | None:
        items = self._table.query(self._pk, limit=1)
        token = items[0].get("token") if items else None
        return token if isinstance(token, str) and token else None

    def save(self, token: str | None) -> None:
        """Store the continuation token, or clear it (an empty token) when a sweep completes."""
        self._table.put({"pk": self._pk, "sk": "cursor", "token": token or "", "updated_at": self._clock().isoformat()})


class DynamoLedger:
    """The notification ledger: ``claim`` succeeds once per key per window (a conditional put)."""

    def __init__(self, table: Table, clock: Clock = utc_now) -> None:
        self._table = table
        self._clock = clock

    def claim(self, key: str, ttl_seconds: int) -> bool:
        """True if nobody announced ``key`` within the window (and records it now)."""
        # Imported here so this module stays importable without boto3 in pure tests.
        from chalicelib.adapters.errors import ConditionFailed

        now = int(self._clock().timestamp())
        try:
            self._table.put(
                {"pk": f"notice#{key}", "sk": "notice", "expiration": now + ttl_seconds, "claimed_at": now},
                condition="attribute_not_exists(pk) OR expiration < :now",
                values={":now": now},
            )
        except ConditionFailed:
            return False
        return True

    def release(self, key: str) -> None:
        """Forget ``key`` (no channel carried the news, so the next attempt must not be muted)."""
        self._table.delete(f"notice#{key}", "notice")


def _dump(document: PolicyDoc) -> str:
    # Number literals as written: a revert must restore the original byte for byte in meaning and text.
    return to_compact_json(document)


def _record(item: Mapping[str, Any]) -> ChangeRecord:
    return ChangeRecord(
        change_id=str(item["change_id"]),
        role_arn=str(item["role_arn"]),
        role_name=str(item["role_name"]),
        kind=ChangeKind(str(item["kind"])),
        status=ChangeStatus(str(item["status"])),
        before=jsontext.loads(str(item["before"])),
        after=jsontext.loads(str(item["after"])),
        actor=item.get("actor"),
        event_id=item.get("event_id"),
        mode=str(item.get("mode", "")),
        trigger=str(item.get("trigger", "")),
        reason=str(item.get("reason", "")),
        created_at=str(item["created_at"]),
        sk=str(item["sk"]),
        error=item.get("error"),
        reverts=item.get("reverts"),
        item=dict(item),
    )
