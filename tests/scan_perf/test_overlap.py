"""A dry run overlaps its IAM calls within bounds; a run that may write reads each role just before deciding."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.adapters import aws
from chalicelib.domain.models import Mode
from chalicelib.service import scan as scan_module
from chalicelib.service.scan import scan
from tests.scan_perf.conftest import FLAGGED, MakeWorld, Probe, Timeline, rows, seed
from tests.world import deny_authorization_details

HOLD = 10.0  # seconds a held call waits at most for what it waits for; reaching it fails the test


def test_a_dry_run_keeps_the_configured_reads_in_flight_and_never_more(make_world: MakeWorld) -> None:
    # Given 200 roles, 40 of them flagged, and room for 4 reads in flight
    world = make_world(idempotent=False, scan_concurrency="4")
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 120, "compliant": 40, "vulnerable": 30, "foreign": 10})
    together = threading.Barrier(4, timeout=HOLD)
    # (the first four reads are held until all four have been sent: only reads in flight together pass)
    probe = Probe("ListRoleTags", hold=lambda _role, number: together.wait() if number < 4 else None).install()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then four reads were in flight at once, never more, and each flagged role was read once
    assert report.complete and not together.broken
    assert probe.peak == 4
    assert sorted(probe.seen) == sorted(r.role_name for r in report.results if r.role_name.startswith(FLAGGED))


def scan_readers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("scan-read")}


def test_the_reader_threads_start_while_the_first_page_is_on_its_way(make_world: MakeWorld) -> None:
    # Given room for 6 reads in flight, and a first ListRoles that waits until 6 reader threads exist
    # (counting only this scan's: an earlier test's read left behind at its deadline may still be ending)
    world = make_world(idempotent=False, scan_concurrency="6")
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 20, "vulnerable": 12})
    earlier = scan_readers()
    readers_at_listing: list[int] = []

    def hold(_marker: str, _number: int) -> None:
        deadline = time.monotonic() + HOLD
        while len(scan_readers() - earlier) < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        readers_at_listing.append(len(scan_readers() - earlier))

    Probe("ListRoles", hold=hold).install()
    reads = Probe("ListRoleTags").install()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then all 6 readers were running before the page arrived (not started one by one as reads were
    # queued), the scan read every flagged role, and its readers are gone afterwards
    assert readers_at_listing == [6]
    assert report.complete and len(reads.seen) == 12 and reads.peak <= 6
    assert not scan_readers() - earlier


class _RecordedBarrier(threading.Barrier):
    """A barrier that says whether it was given up (aborted) rather than waited out."""

    given_up = False

    def abort(self) -> None:
        self.given_up = True
        super().abort()


def test_a_reader_thread_that_cannot_start_does_not_stall_the_scan(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process that can start only two more threads
    world = make_world(idempotent=False, scan_concurrency="8")
    seed({"lambda": 20, "vulnerable": 12})
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    real_start = threading.Thread.start
    started = 0

    def limited(thread: threading.Thread) -> None:
        nonlocal started
        if thread.name.startswith("scan-read"):
            started += 1
            if started > 2:
                raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", limited)
    # (and a start barrier that would hold the started threads for a minute if it were not given up)
    monkeypatch.setattr(scan_module, "_THREAD_START_SECONDS", 60.0)
    barriers: list[_RecordedBarrier] = []
    monkeypatch.setattr(
        threading, "Barrier", lambda *a, **k: barriers.append(_RecordedBarrier(*a, **k)) or barriers[-1]
    )
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then the scan completes on the threads it has, without waiting out the start barrier
    assert report.complete and len(report.results) == 32
    assert sum(r.role_name.startswith("vulnerable") and r.action.value == "would_fix" for r in report.results) == 12
    assert barriers and all(barrier.given_up for barrier in barriers)


def test_a_dry_run_fetches_the_next_page_while_it_reads_the_flagged_roles_of_this_one(make_world: MakeWorld) -> None:
    # Given two ListRoles pages
    world = make_world(idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 1000, "compliant": 60, "vulnerable": 40})
    second_page = threading.Event()
    lists = Probe("ListRoles", hold=lambda marker, _n: second_page.set() if marker else None).install()
    # (the first read waits until the second page has been asked for)
    reads = Probe("ListRoleTags", hold=lambda _role, number: second_page.wait(HOLD) if number == 0 else None).install()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then the second page was on its way before the first read completed, and nothing was fetched twice
    assert report.complete and len(report.results) == 1100
    assert second_page.is_set() and len(lists.seen) == 2
    assert len(reads.seen) == len(set(reads.seen)) == 40


def test_a_dry_run_reads_on_across_the_page_boundary(make_world: MakeWorld) -> None:
    # Given two ListRoles pages with flagged roles on both, and room for 4 reads in flight
    world = make_world(idempotent=False, scan_concurrency="4")
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 1000, "compliant": 100, "vulnerable": 200})
    first_page: list[str] = []
    aws.make_client("iam").meta.events.register(
        "after-call.iam.ListRoles",
        lambda parsed, **_: None if first_page else first_page.extend(r["RoleName"] for r in parsed["Roles"]),
    )
    next_page_read = threading.Event()
    released: list[bool] = []

    def hold(role: str, _number: int) -> None:
        flagged_first = [name for name in first_page if name.startswith(FLAGGED)]
        if role not in first_page:
            next_page_read.set()
        elif role == flagged_first[-1]:
            # the first page's last read waits for a read of the second page
            released.append(next_page_read.wait(HOLD))

    Probe("ListRoleTags", hold=hold).install()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then a read of the second page was sent while the first page's last read was still out: the
    # readers did not wait for the first page's decisions to finish
    assert report.complete and len(report.results) == 1300
    assert released == [True]
    assert [r.role_name for r in report.results[:1000]] == first_page


def test_a_scan_that_may_write_reads_each_role_just_before_deciding_one_at_a_time(make_world: MakeWorld) -> None:
    # Given two ListRoles pages with flagged roles on both (notify mode: decisions, no writes to race)
    world = make_world(idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 1000, "compliant": 60, "vulnerable": 40})
    timeline = Timeline().install()
    reads = Probe("GetRole").install()
    # When the account is scanned with fixes allowed
    report = scan(world.deps, dry_run=False, mode=Mode.NOTIFY, trigger="sweep")
    # Then every read is a GetRole (the document and the tags as IAM holds them now), never a tag read
    assert not [op for op, _name in timeline.calls if op == "ListRoleTags"]
    # And one IAM call at a time: each flagged role read in listing order as its decision came up, and
    # the second page asked for only after every role of the first one was decided
    assert report.complete and reads.peak == 1
    flagged = [r.role_name for r in report.results if r.role_name.startswith(FLAGGED)]
    assert [name for op, name in timeline.calls if op == "GetRole"] == flagged
    second = next(i for i, (op, marker) in enumerate(timeline.calls) if op == "ListRoles" and marker)
    first_page = {r.role_name for r in report.results[:1000]}
    assert all(name not in first_page for _op, name in timeline.calls[second:])
    assert {r.action.value for r in report.results if r.role_name.startswith(FLAGGED)} == {"notified"}


def test_overlapped_and_one_at_a_time_scans_report_the_same_rows(make_world: MakeWorld) -> None:
    # Given an account over two pages
    world = make_world(idempotent=False, mode="dry-run")
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 950, "compliant": 100, "vulnerable": 40, "foreign": 10})
    # When it is scanned with 16 reads in flight, and again with one
    overlapped = scan(world.deps, dry_run=True)
    object.__setattr__(world.deps.settings, "scan_concurrency", 1)
    sequential = scan(world.deps, dry_run=True)
    # Then both list the same roles in the same order with the same verdicts, actions and diffs
    assert rows(overlapped) == rows(sequential) and len(overlapped.results) == 1100


def test_a_read_that_outlasts_the_budget_ends_the_page_there_and_the_token_resumes_it(make_world: MakeWorld) -> None:
    # Given 30 roles, 10 flagged, reads one at a time, and IAM answering every read after the first
    # only when the test says so
    world = make_world(idempotent=False, scan_concurrency="1")
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 10, "compliant": 10, "vulnerable": 10})
    answer = threading.Event()
    Probe("ListRoleTags", hold=lambda _role, number: answer.wait(HOLD) if number > 0 else None).install()
    # When a dry run with a short budget meets the second read, which does not come back in time
    first = scan(world.deps, dry_run=True, budget_seconds=0.5)
    answered_before_return = answer.is_set()
    answer.set()
    # Then the scan returned without waiting for it, with the roles before it and a token for the rest
    assert not answered_before_return
    assert not first.complete and first.next_token
    assert sum(r.role_name.startswith(FLAGGED) for r in first.results) == 1
    # And continuing from the token covers every other role exactly once
    rest = scan(world.deps, dry_run=True, next_token=first.next_token)
    names = [r.role_name for r in first.results + rest.results]
    assert rest.complete and sorted(names) == sorted(set(names)) and len(names) == 30


def test_compliant_and_not_applicable_results_keep_no_document(make_world: MakeWorld) -> None:
    world = make_world(idempotent=False)
    seed({"lambda": 5, "compliant": 5, "vulnerable": 5})
    report = scan(world.deps, dry_run=True)
    kept = {r.role_name.split("-")[0]: r for r in report.results}
    for kind in ("lambda", "compliant"):
        assert kept[kind].evaluation.original is None and kept[kind].before is None and kept[kind].diff == ""
    assert kept["vulnerable"].before is not None and kept["vulnerable"].diff
