"""The organization sweep: one SQS message per account, and one account swept per message.

``fan_out`` (the scheduled ``sweep`` in multi-account scope) sends ``{"account": ID}`` for every account in
scope to the work queue. ``sweep_account`` (the ``scan_account`` handler, one message per invocation) sweeps
one account with its own resumable cursor. Concurrency, retries and the dead-letter queue are SQS's and
Lambda's: the event source mapping's maximum concurrency bounds the accounts swept at once, a failure is
raised so that SQS delivers the message again, and after the queue's maxReceiveCount it lands in the
dead-letter queue. Nothing here schedules anything itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.names import valid_account_id
from chalicelib.service.accounts import AccountMetrics, Accounts, AccountUnavailable, account_log_key
from chalicelib.service.scan import sweep

# A sweep cut short by its time budget sends its account back to the queue to go on from its cursor, at
# most this many times in a row (a chain longer than this means an account too large for one day's sweep).
MAX_CONTINUATIONS = 20


class WorkQueue(Protocol):
    """What the fan-out needs of SQS (chalicelib.adapters.aws.SqsGateway provides it)."""

    def send_messages(self, queue_url: str, bodies: Sequence[str]) -> list[tuple[int, str]]: ...

    def send_message(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str: ...


class AccountSweepFailed(RuntimeError):
    """One account's sweep failed; raised so that SQS retries the message (then dead-letters it)."""

    def __init__(self, account: str, reason: str) -> None:
        super().__init__(f"sweep of account {account} failed: {reason}")
        self.account = account


@dataclass(frozen=True)
class WorkItem:
    account: str
    continuation: int = 0

    def to_body(self) -> str:
        item: dict[str, Any] = {"account": self.account}
        if self.continuation:
            item["continuation"] = self.continuation
        return json.dumps(item, separators=(",", ":"))


def parse_work_item(body: str) -> WorkItem | None:
    """``{"account": "123456789012", "continuation": 0}``, or None for anything else."""
    try:
        item = json.loads(body)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(item, dict) or set(item) - {"account", "continuation"}:
        return None
    account, continuation = item.get("account"), item.get("continuation", 0)
    if not isinstance(account, str) or not valid_account_id(account):
        return None
    if type(continuation) is not int or not 0 <= continuation <= MAX_CONTINUATIONS:
        return None
    return WorkItem(account, continuation)


def fan_out(accounts: Accounts, queue: WorkQueue, queue_url: str) -> dict[str, Any]:
    """Send one message per account in scope; raises AwsError when the accounts cannot be listed."""
    central = accounts.central
    ids = accounts.accounts()
    failed = queue.send_messages(queue_url, [WorkItem(account).to_body() for account in ids])
    refused = sorted(ids[index] for index, _code in failed)
    central.metrics.add_metric("AccountsEnqueued", len(ids) - len(refused))
    if refused:
        central.metrics.add_metric("AccountsNotEnqueued", len(refused))
        central.logger.error(
            "some accounts could not be queued; the next sweep queues them again",
            extra={"accounts": refused, "errors": sorted({code for _index, code in failed})},
        )
    summary = {
        "status": "fanned_out",
        "scope": accounts.scope.kind.value,
        "accounts": len(ids),
        "enqueued": len(ids) - len(refused),
        "not_enqueued": refused,
    }
    central.logger.info("sweep fanned out", extra=summary)
    return summary


def sweep_account(
    body: str, accounts: Accounts, queue: WorkQueue, queue_url: str, *, budget_seconds: float | None
) -> dict[str, Any]:
    """Sweep the account one work message names; raises AccountSweepFailed so that SQS retries it."""
    central = accounts.central
    item = parse_work_item(body)
    if item is None:
        # Retrying cannot repair a malformed message: say so loudly and let it go.
        central.metrics.add_metric("WorkMessageMalformed")
        central.logger.error('work message dropped: not {"account": ID}', extra={"body": body[:200]})
        return {"status": "dropped", "reason": "malformed"}
    account = item.account
    with account_log_key(central.logger, account):
        metrics = AccountMetrics(central.metrics, account)
        try:
            if not accounts.in_scope(account):
                metrics.add_metric("AccountsOutOfScope")
                central.logger.warning("work message for an account out of scope dropped", extra={"account": account})
                return {"status": "skipped", "reason": "out_of_scope", "account": account}
            summary = sweep(accounts.deps_for(account), budget_seconds=budget_seconds)
        except AccountUnavailable as exc:
            # deps_for has logged and counted it already.
            raise AccountSweepFailed(account, f"cannot assume the member role ({exc.cause.code})") from exc
        except AwsError as exc:
            metrics.add_account_metric("AccountSweepFailed")
            central.logger.error("account sweep failed", extra={"account": account, "error": str(exc)})
            raise AccountSweepFailed(account, str(exc)) from exc
        result: dict[str, Any] = {"account": account, **summary}
        if summary.get("status") == "partial":
            result["continued"] = _continue(item, accounts, queue, queue_url)
        metrics.add_metric("AccountsSwept")
        central.logger.info("account swept", extra=result)
        return result


def _continue(item: WorkItem, accounts: Accounts, queue: WorkQueue, queue_url: str) -> bool:
    """Queue the account again to go on from its saved cursor; False when the chain is too long."""
    central = accounts.central
    if item.continuation >= MAX_CONTINUATIONS:
        AccountMetrics(central.metrics, item.account).add_account_metric("AccountSweepTooLong")
        central.logger.error(
            "account sweep still unfinished after the most continuations; the next sweep goes on from its cursor",
            extra={"account": item.account, "continuations": item.continuation},
        )
        return False
    try:
        queue.send_message(queue_url, WorkItem(item.account, item.continuation + 1).to_body())
    except AwsError as exc:
        # The cursor is saved: failing this message makes SQS deliver it again, and that run goes on from it.
        raise AccountSweepFailed(item.account, f"could not queue the rest of the sweep ({exc.code})") from exc
    return True
