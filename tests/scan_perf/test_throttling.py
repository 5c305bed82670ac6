"""IAM throttles a dry-run scan: the adaptive client paces itself, retries, and the report is unchanged."""

from __future__ import annotations

from chalicelib.adapters import aws
from chalicelib.domain.settings import MAX_SCAN_CONCURRENCY
from chalicelib.service.scan import scan
from tests.scan_perf.conftest import MakeWorld, ThrottleFirstAttempts, VirtualPacing, rows, seed
from tests.world import deny_authorization_details


def test_the_bot_clients_retry_in_adaptive_mode_within_the_api_time_bounds(make_world: MakeWorld) -> None:
    make_world(idempotent=False)
    config = aws.make_client("iam").meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.max_pool_connections >= MAX_SCAN_CONCURRENCY + 1  # the most reads in flight, and a page


def test_a_throttled_dry_run_scan_slows_down_retries_and_reports_every_verdict_unchanged(
    make_world: MakeWorld, pacing: VirtualPacing, backoffs: list[float]
) -> None:
    # Given 1,100 roles over two ListRoles pages, 60 of them flagged (so 60 ListRoleTags reads), and the
    # report of a scan IAM did not throttle
    world = make_world(idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 900, "compliant": 140, "vulnerable": 50, "foreign": 10})
    clean = scan(world.deps, dry_run=True)
    assert clean.complete and len(clean.results) == 1100
    assert pacing.acquired == 0 and backoffs == []  # the limiter costs nothing until IAM throttles
    # When IAM answers Throttling to the first attempt of every ListRoles page and every ListRoleTags
    throttle = ThrottleFirstAttempts(("ListRoles", "ListRoleTags")).install()
    report = scan(world.deps, dry_run=True)
    # Then each refused call was retried after a backoff, nothing failed, and the report is the same
    assert sum(throttle.refused.values()) == 2 + 60
    assert throttle.attempts == {"ListRoles": 2 * 2, "ListRoleTags": 2 * 60}
    assert len(backoffs) == 2 + 60
    assert report.complete and report.next_token is None
    assert rows(report) == rows(clean)
    assert report.summary == {"compliant": 140, "not_applicable": 900, "non_compliant": 50, "needs_review": 10}
    # And the client slowed down: from the first Throttling on, every request took a token from the
    # adaptive rate limiter (all but the very first one), and the limiter held requests back: the
    # seconds it paced them by are what this scan would have spent waiting (IAM refused something all
    # through the scan, so the send rate never recovered)
    assert pacing.acquired == 2 * 2 + 2 * 60 - 1
    assert len(pacing.waits) > 60 and pacing.paced_seconds > 10
