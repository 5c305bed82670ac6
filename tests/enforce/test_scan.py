"""Account scans and the sweep against moto: calls counted, the cap honoured, dry runs write nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.domain.events import RoleRef
from chalicelib.domain.models import Mode
from chalicelib.domain.plan import Run
from chalicelib.service.enforce import process_role
from chalicelib.service.scan import scan, sweep
from tests.reliability.support import RecordingLogger
from tests.world import COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, World, deny_authorization_details

MakeWorld = Callable[..., World]


def seed(world: World, counts: dict[str, int]) -> None:
    documents = {"lambda": LAMBDA_ONLY, "compliant": COMPLIANT, "vulnerable": VULNERABLE, "foreign": FOREIGN}
    for kind, count in counts.items():
        for index in range(count):
            world.iam.create_role(RoleName=f"{kind}-{index:04d}", AssumeRolePolicyDocument=json.dumps(documents[kind]))


def test_scan_evaluates_from_the_listing_and_reads_only_flagged_roles(make_world: MakeWorld) -> None:
    # Given 1,030 roles: 1,000 unrelated, 20 compliant, 7 vulnerable, 3 with a foreign account
    world = make_world(idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed(world, {"lambda": 1000, "compliant": 20, "vulnerable": 7, "foreign": 3})
    world.calls.clear()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then one refused call, two ListRoles pages and one tag read (ListRoleTags) per flagged role, no write
    assert report.complete and len(report.results) == 1030
    assert report.summary == {"compliant": 20, "not_applicable": 1000, "non_compliant": 7, "needs_review": 3}
    assert world.aws_calls() == {"iam.GetAccountAuthorizationDetails": 1, "iam.ListRoles": 2, "iam.ListRoleTags": 10}


def test_dry_run_scan_writes_nothing_anywhere(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", idempotent=False)
    seed(world, {"vulnerable": 3, "foreign": 1})
    world.calls.clear()
    scan(world.deps, dry_run=True)
    writes = {k for k in world.aws_calls() if not k.split(".")[1].startswith(("Get", "List", "Query", "Describe"))}
    assert writes == set()
    assert world.notifier.all == []


def test_the_fix_cap_limits_a_sweep_and_the_next_sweep_continues(make_world: MakeWorld) -> None:
    # Given five vulnerable roles and a cap of two fixes per run
    world = make_world(mode="enforce", max_fixes_per_run="2")
    seed(world, {"vulnerable": 5})
    # When the sweep runs twice
    first = sweep(world.deps)
    second = sweep(world.deps)
    # Then each run fixes at most two and reports the rest as capped
    assert first["actions"] == {"fixed": 2, "capped": 3}
    assert second["actions"] == {"none": 2, "fixed": 2, "capped": 1}
    capped = [n for _owner, notices in world.notifier.digests for n in notices if n.action.value == "capped"]
    assert capped and all("cap of 2" in n.reason for n in capped)


def test_sweep_honours_notify_mode(make_world: MakeWorld) -> None:
    world = make_world(mode="notify")
    seed(world, {"vulnerable": 2})
    summary = sweep(world.deps)
    assert summary["actions"] == {"notified": 2}
    assert world.trust("vulnerable-0000") == VULNERABLE
    assert len(world.notifier.digests) == 1 and len(world.notifier.digests[0][1]) == 2


def test_sweep_in_dry_run_mode_is_silent(make_world: MakeWorld) -> None:
    world = make_world(mode="dry-run")
    seed(world, {"vulnerable": 2})
    assert sweep(world.deps)["actions"] == {"would_fix": 2}
    assert world.notifier.all == []


def test_scan_with_fixes_is_an_explicit_request_even_in_notify_mode(make_world: MakeWorld) -> None:
    world = make_world(mode="notify")
    seed(world, {"vulnerable": 1})
    report = scan(world.deps, dry_run=False)
    assert [r.action.value for r in report.results] == ["fixed"]


def test_sweep_mode_comes_from_settings_not_the_scan_default(make_world: MakeWorld) -> None:
    world = make_world(mode="notify")
    seed(world, {"vulnerable": 1})
    report = scan(world.deps, dry_run=False, mode=Mode.NOTIFY, trigger="sweep")
    assert [r.action.value for r in report.results] == ["notified"]


class _Clock:
    """A monotonic clock that only moves when told to: a role's cost is given, not measured."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_the_budget_is_checked_before_every_role_not_every_page(make_world: MakeWorld, monkeypatch) -> None:
    # Given one page of 6 roles whose evaluation costs 0.2 s each on the scan's clock, and a 0.5 s budget
    from chalicelib.domain import plan as plan_module
    from chalicelib.service import enforce as enforce_module
    from chalicelib.service import scan as scan_module

    world = make_world(idempotent=False)
    for index in range(6):
        # Six different documents: a scan evaluates each distinct document once.
        document = {**COMPLIANT, "Id": f"compliant-{index}"}
        world.iam.create_role(RoleName=f"compliant-{index:04d}", AssumeRolePolicyDocument=json.dumps(document))
    real = enforce_module.evaluate_role
    clock = _Clock()
    monkeypatch.setattr(scan_module, "time", clock)
    monkeypatch.setattr(plan_module, "time", clock)

    evaluated: list[str] = []

    def slow(role, deps):
        clock.now += 0.2
        evaluated.append(role.name)
        return real(role, deps)

    monkeypatch.setattr(enforce_module, "evaluate_role", slow)
    # When scanned with the budget, continuing through next_token until complete
    seen: list[str] = []
    first = scan(world.deps, dry_run=True, budget_seconds=0.5)
    evaluated_first = len(evaluated)
    seen += [r.role_name for r in first.results]
    token = first.next_token
    while token:
        report = scan(world.deps, dry_run=True, budget_seconds=0.5, next_token=token)
        seen += [r.role_name for r in report.results]
        token = report.next_token
    # Then the first call stops evaluating at the budget (the third role reaches 0.6 s), not after the
    # whole page, and the continuation covers every role exactly once
    assert not first.complete and evaluated_first == 3 and len(first.results) <= 3
    assert sorted(seen) == [f"compliant-{i:04d}" for i in range(6)]


class _Calls(RecordingLogger):
    """Records each log call (RecordingLogger) and each metric call (name, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[str, float]] = []

    def add_metric(self, name: str, value: float = 1) -> None:
        self.metrics.append((name, value))

    def records(self) -> list[tuple[str, str, str | None]]:
        """Each log call as (level, message, role)."""
        return [(line.level, line.message, line.extra.get("role")) for line in self.lines]


def test_a_scan_logs_findings_at_info_the_rest_at_debug_and_sums_its_metrics_once(make_world: MakeWorld) -> None:
    # Given 40 roles: 30 unrelated, 5 compliant, 3 vulnerable, 2 with a foreign account
    world = make_world(idempotent=False)
    seed(world, {"lambda": 30, "compliant": 5, "vulnerable": 3, "foreign": 2})
    calls = _Calls()
    deps = replace(world.deps, metrics=calls, logger=calls)
    # When the account is scanned as a dry run
    scan(deps, dry_run=True)
    # Then every role has a decision line; only the five findings are at INFO
    decisions = [(level, role) for level, msg, role in calls.records() if msg == "decision"]
    assert len(decisions) == 40
    assert sorted(role or "" for level, role in decisions if level == "info") == [
        "foreign-0000",
        "foreign-0001",
        "vulnerable-0000",
        "vulnerable-0001",
        "vulnerable-0002",
    ]
    assert {level for level, _ in decisions} == {"info", "debug"}
    # And each count is added once, with the run's total, as CloudWatch would sum the per-role ones
    assert sorted(calls.metrics) == [("RolesEvaluated", 40), ("RolesNeedingReview", 2)]


def _ref(role: str) -> RoleRef:
    return RoleRef(role, "e-1", "CreateRole", "123456789012", "us-east-1", "2026-11-30T00:00:00Z", None)


def test_an_event_still_logs_a_compliant_role_at_info(make_world: MakeWorld) -> None:
    world = make_world(idempotent=False)
    world.iam.create_role(RoleName="ok-sfn", AssumeRolePolicyDocument=json.dumps(COMPLIANT))
    calls = _Calls()
    deps = replace(world.deps, metrics=calls, logger=calls)
    role = deps.iam.get_role("ok-sfn")
    assert role is not None
    process_role(role, deps, Run(mode=Mode.NOTIFY, trigger="event", max_fixes=5), _ref("ok-sfn"))
    assert ("info", "decision", "ok-sfn") in calls.records()
    assert calls.metrics == [("RolesEvaluated", 1)]
