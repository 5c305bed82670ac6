"""The per-account credential cache: reused while fresh, refreshed shortly before expiry, one AssumeRole at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.credentials import CredentialCache, TemporaryCredentials

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ROLE_A = "arn:aws:iam::111122223333:role/deputy-guard-member"
ROLE_B = "arn:aws:iam::444455556666:role/deputy-guard-member"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Sts:
    """Hands out numbered one-hour credentials, counting calls per role."""

    def __init__(
        self, clock: Clock, delay: float = 0.0, fail: set[str] | None = None, meet: threading.Barrier | None = None
    ) -> None:
        self.clock = clock
        self.delay = delay
        self.meet = meet  # calls wait here for each other: only calls made at the same time can all pass
        self.fail = fail or set()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, role_arn: str) -> TemporaryCredentials:
        with self._lock:
            self.calls[role_arn] += 1
            serial = self.calls[role_arn]
        time.sleep(self.delay)
        if self.meet is not None:
            self.meet.wait()
        if role_arn in self.fail:
            raise PermissionError("AccessDenied")
        return TemporaryCredentials(f"ASIA{serial}", "secret", "token", self.clock() + timedelta(hours=1))


def test_credentials_are_reused_until_five_minutes_before_they_expire() -> None:
    clock = Clock()
    sts = Sts(clock)
    cache = CredentialCache(sts, clock=clock)
    first = cache.get(ROLE_A)
    clock.now = T0 + timedelta(minutes=54, seconds=59)
    assert cache.get(ROLE_A) is first and sts.calls[ROLE_A] == 1
    # Within the margin: refreshed, so a call started now never runs on expired credentials
    clock.now = T0 + timedelta(minutes=55)
    second = cache.get(ROLE_A)
    assert second.access_key_id == "ASIA2" and sts.calls[ROLE_A] == 2
    assert second.expiration - clock.now > cache.refresh_margin


def test_each_account_has_its_own_credentials() -> None:
    clock = Clock()
    sts = Sts(clock)
    cache = CredentialCache(sts, clock=clock)
    assert cache.get(ROLE_A) is not cache.get(ROLE_B)
    assert sts.calls == Counter({ROLE_A: 1, ROLE_B: 1})


def test_concurrent_callers_for_one_account_share_one_assume_role() -> None:
    clock = Clock()
    sts = Sts(clock, delay=0.05)
    cache = CredentialCache(sts, clock=clock)
    got: list[TemporaryCredentials] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(ROLE_A))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sts.calls[ROLE_A] == 1 and len({id(c) for c in got}) == 1


def test_accounts_are_not_serialised_behind_each_other() -> None:
    # Given eight accounts whose AssumeRole calls each wait until all eight are in flight at once
    clock = Clock()
    roles = [f"arn:aws:iam::{n:012d}:role/deputy-guard-member" for n in range(8)]
    meeting = threading.Barrier(len(roles), timeout=30)
    sts = Sts(clock, meet=meeting)
    cache = CredentialCache(sts, clock=clock)
    got: list[TemporaryCredentials] = []
    # When each is asked for from its own thread
    threads = [threading.Thread(target=lambda role=role: got.append(cache.get(role))) for role in roles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every call met the others (calls made one after another would break the barrier, and get nothing)
    assert not meeting.broken
    assert len(got) == len(roles) and sum(sts.calls.values()) == len(roles)


def test_a_refusal_is_not_cached() -> None:
    clock = Clock()
    sts = Sts(clock, fail={ROLE_A})
    cache = CredentialCache(sts, clock=clock)
    for _ in range(2):
        with pytest.raises(PermissionError):
            cache.get(ROLE_A)
    assert sts.calls[ROLE_A] == 2
    sts.fail.clear()
    assert cache.get(ROLE_A).access_key_id == "ASIA3"


def test_forget_drops_the_cached_credentials() -> None:
    clock = Clock()
    sts = Sts(clock)
    cache = CredentialCache(sts, clock=clock)
    cache.get(ROLE_A)
    cache.forget(ROLE_A)
    cache.get(ROLE_A)
    assert sts.calls[ROLE_A] == 2


def test_the_botocore_clients_refresh_through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived member client keeps working: botocore asks the cache again inside the refresh margin."""
    from chalicelib.adapters import aws

    clock = Clock()
    clock.now = datetime.now(UTC)  # botocore judges expiry on the real clock
    sts = Sts(clock)
    cache = CredentialCache(sts, clock=clock)
    monkeypatch.setattr(aws, "_member_credentials", cache)
    provider = aws._MemberCredentialProvider(ROLE_A)
    credentials = provider.load()
    assert credentials.get_frozen_credentials().access_key == "ASIA1"
    # botocore's own refresh windows follow the cache's margin
    assert credentials._advisory_refresh_timeout == 300 and credentials._mandatory_refresh_timeout == 150


def test_member_sessions_do_not_grow_the_shared_loaders_search_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container that scans account after account makes a session per account on one shared loader."""
    from chalicelib.adapters import aws

    clock = Clock()
    clock.now = datetime.now(UTC)
    monkeypatch.setattr(aws, "_member_credentials", CredentialCache(Sts(clock), clock=clock))
    aws.make_client("sts")  # the bot's own session: the loader is shared from here on
    paths = list(aws._loader["data_loader"].search_paths)
    # When clients are made in twenty member accounts (each its own session, on the same loader)
    for account in range(20):
        aws.member_client(f"arn:aws:iam::{100000000000 + account}:role/deputy-guard-member", "iam")
    # Then the loader's search path is what it was, each folder once
    after = aws._loader["data_loader"].search_paths
    assert after == paths and len(set(after)) == len(after)
