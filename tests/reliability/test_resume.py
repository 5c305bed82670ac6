"""A sweep cut short (budget, crash, stale cursor): the next one resumes, and repeats nothing harmful."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.service.scan import encode_token, request_digest, sweep
from tests.reliability.conftest import Account
from tests.world import COMPLIANT, VULNERABLE

MakeAccount = Callable[..., Account]
VULNERABLE_ROLES = [f"sfn-{i}" for i in range(6)]


class LambdaKilled(BaseException):
    """Stands in for the end of an invocation mid-sweep (not an Exception: nothing may swallow it)."""


def seeded(account: MakeAccount, **env: Any) -> Account:
    acct = account(idempotent=False, **env)
    for name in VULNERABLE_ROLES:
        acct.create_role(name, VULNERABLE, tags={"owner": f"team-{name}"})
    acct.create_role("sfn-compliant", COMPLIANT)
    return acct


def sweep_until_complete(acct: Account, budget: float | None, limit: int = 20) -> list[dict[str, Any]]:
    runs = [sweep(acct.deps, budget_seconds=budget)]
    while runs[-1]["status"] != "complete":
        assert len(runs) < limit, "the sweep never completed"
        runs.append(sweep(acct.deps, budget_seconds=budget))
    return runs


def announced(acct: Account) -> Counter[str]:
    return Counter(n.role_name for n in acct.world.notifier.all)


def test_budget_cut_sweeps_resume_and_fix_each_role_once(account: MakeAccount) -> None:
    # Given seven roles, six vulnerable, and a sweep budget so small each run handles one role
    acct = seeded(account, mode="enforce")
    # When sweeps run until one completes
    runs = sweep_until_complete(acct, budget=0.0)
    # Then every run after the first resumed from the cursor, and each vulnerable role was fixed exactly
    # once, recorded once, and announced once
    assert len(runs) == 7
    assert [r["resumed"] for r in runs] == [False] + [True] * 6
    assert sorted(w.role for w in acct.guard.fixes()) == VULNERABLE_ROLES
    assert all([r["status"] for r in acct.records(name)] == ["applied"] for name in VULNERABLE_ROLES)
    assert announced(acct) == Counter(VULNERABLE_ROLES)
    # And the cursor is cleared: the next sweep starts from the top and finds nothing to do
    again = sweep(acct.deps)
    assert again["resumed"] is False and again["actions"] == {"none": 7}


def test_notify_mode_resumed_sweeps_announce_each_role_once(account: MakeAccount) -> None:
    # Given notify mode (nothing is fixed, so every sweep sees the same findings) and the production
    # notifier with its DynamoDB ledger
    acct = seeded(account, mode="notify")
    acct.use_real_notifier(sns=True)
    # When budget-cut sweeps run to completion, and then a full sweep runs again
    sweep_until_complete(acct, budget=0.0)
    sweep(acct.deps)
    # Then each vulnerable role reached its owner exactly once: the ledger held back the repeat
    roles = [role["role_name"] for message in acct.sns_messages() for role in message.get("items", [message])]
    assert Counter(roles) == Counter(VULNERABLE_ROLES)
    assert acct.metrics["NotificationSuppressed"] == len(VULNERABLE_ROLES)


def test_a_crash_mid_sweep_restarts_from_the_top_harmlessly(account: MakeAccount) -> None:
    # Given the invocation dies while re-reading the fourth vulnerable role (no cursor is saved)
    acct = seeded(account, mode="enforce")
    reads: list[int] = []

    def die_on_fourth() -> None:
        reads.append(1)
        if len(reads) == 4:
            raise LambdaKilled

    acct.faults.meanwhile("iam", "GetRole", die_on_fourth, times=4)
    with pytest.raises(LambdaKilled):
        sweep(acct.deps)
    fixed_before_crash = {w.role for w in acct.guard.fixes()}
    assert len(fixed_before_crash) == 3
    # When the next scheduled sweep runs
    acct.faults.clear()
    summary = sweep(acct.deps)
    # Then it started from the top, left the three fixed roles alone (compliant now), and fixed the rest;
    # no role was written twice, recorded twice, or announced twice
    assert summary["resumed"] is False and summary["status"] == "complete"
    assert summary["actions"] == {"none": 4, "fixed": 3}
    assert sorted(w.role for w in acct.guard.fixes()) == VULNERABLE_ROLES
    assert all(len(acct.records(name)) == 1 for name in VULNERABLE_ROLES)
    # And the fixes made before the crash were announced when the crashed run unwound
    assert announced(acct) == Counter(VULNERABLE_ROLES)


def test_a_cursor_iam_no_longer_accepts_is_dropped_after_one_failure(account: MakeAccount) -> None:
    # Given a saved cursor whose ListRoles marker IAM now rejects
    acct = seeded(account, mode="enforce")
    assert acct.deps.cursor is not None
    acct.deps.cursor.save(encode_token({"request": request_digest(None, "/"), "marker": "expired", "skip": 0}))
    acct.faults.inject("iam", "ListRoles", "ValidationError", when=lambda r: "Marker=expired" in r.body)
    # When the next sweep runs, it fails on the marker
    with pytest.raises(Exception, match="ValidationError"):
        sweep(acct.deps)
    assert acct.logs.with_message("resumed sweep failed; its cursor is discarded")
    # Then the sweep after it starts from the top and completes, instead of failing the same way forever
    summary = sweep(acct.deps)
    assert summary["resumed"] is False and summary["status"] == "complete"
    assert sorted(w.role for w in acct.guard.fixes()) == VULNERABLE_ROLES


def test_an_unreadable_cursor_means_a_sweep_from_the_top(account: MakeAccount) -> None:
    # Given the cursor cannot be read (DynamoDB Query fails)
    acct = seeded(account, mode="enforce")
    acct.faults.inject("dynamodb", "Query", "ResourceNotFoundException")
    # When the sweep runs
    summary = sweep(acct.deps)
    # Then it sweeps everything from the top, and says why in the log
    assert summary["status"] == "complete" and summary["actions"] == {"fixed": 6, "none": 1}
    assert acct.logs.with_message("sweep cursor unreadable; starting from the top")
