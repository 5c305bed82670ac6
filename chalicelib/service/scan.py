"""Scans (REST, CLI) and the scheduled sweep: evaluate from the listing, read and act only where needed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.models import Action, Evaluation, Mode, RoleRecord, Verdict
from chalicelib.domain.plan import RoleResult, Run
from chalicelib.service.deps import Deps
from chalicelib.service.enforce import Evaluations, needs_read, process_role, send_notices
from chalicelib.service.findings import record_findings
from chalicelib.service.listing import LISTING_ROLES, Listing
from chalicelib.service.listing import BadToken as BadToken
from chalicelib.service.listing import decode_token as decode_token
from chalicelib.service.listing import encode_token as encode_token
from chalicelib.service.listing import request_digest as request_digest

# A whole-account scan lists with GetAccountAuthorizationDetails (Filter Role): up to 1,000 roles a call,
# each with its trust document, path and tags, so a dry run or a sweep that only notifies makes no call
# per role, and a run that may write re-reads (GetRole) only the roles it is about to write. A scan under
# a path prefix lists with ListRoles, which filters by path on IAM's side (the other call has no such
# filter, and reading every role to keep a few would cost more than the tag reads it saves), as does an
# account that denies GetAccountAuthorizationDetails (bench/README.md compares the two listings).
#
# On a ListRoles listing a dry run overlaps its IAM calls; a run that may write makes them one at a time,
# each read just before its decision.
#
# * ListRoles pages chain by marker, so the only overlap they allow is fetching page N+1 while page N is
#   evaluated and decided: one ListRoles ahead, never more.
# * The reads of flagged roles are independent. The listing has each role's document and path but not
#   its tags, so a dry run reads only the tags (ListRoleTags: a smaller request and answer than GetRole,
#   and nothing is written on what it decides); each read starts as soon as its role is evaluated, up to
#   ``settings.scan_concurrency`` in flight, and page N+1 is evaluated as soon as it arrives, so the
#   reads run on across page boundaries and their round trips hide behind the listing instead of adding
#   to it. Decisions stay in listing order.
# * The readers' threads start while the first page is on its way, so the first reads go out together.
#
# The default of 16 reads in flight (DEPUTY_GUARD_SCAN_CONCURRENCY, 1 to 32) is deliberate. How many
# reads IAM sees, and how many a second on average, is set by the account (one per flagged role) and by
# the listing (a page's flagged roles come together, a page per ListRoles round trip); the bound shapes
# only the bursts. It must let a page's reads finish while the next page is fetched: a page of 1,000
# roles with a tenth flagged is 100 reads, and at 40 to 50 ms a read under load (bench/'s 20 ms round
# trip plus the client's and the server's own work) 16 in flight take about as long as the page
# (bench/README.md compares 8, 16 and 32). IAM's rate limits are per account, unpublished and cannot be
# raised, and every other IAM caller in the account draws on the same buckets: so the bound stays
# small, reads stop with the time budget, and from the first Throttling on the IAM client's adaptive
# retry mode (chalicelib/adapters/aws.py) paces every call to the rate IAM accepts, so a throttled
# burst is at most 16 reads and a ListRoles.

# The scan report's schema (POST /scans, `deputy-guard scan --format json`), documented in docs/scan-report.md.
SCAN_REPORT_SCHEMA_VERSION = "1"

# --- scans ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanReport:
    account: str
    complete: bool
    next_token: str | None
    results: tuple[RoleResult, ...]
    missing: tuple[str, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCAN_REPORT_SCHEMA_VERSION,
            "account": self.account,
            "complete": self.complete,
            "next_token": self.next_token,
            "summary": self.summary,
            "actions": _count_actions(self.results),
            "results": [r.to_report() for r in self.results],
            "missing": list(self.missing),
        }

    @property
    def needs_action(self) -> bool:
        """Anything left for a human: a finding neither fixed by this run nor deliberately exempted."""
        settled = (Action.FIXED, Action.EXEMPT)
        return any(
            r.verdict in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW) and r.action not in settled for r in self.results
        )


def scan(
    deps: Deps,
    *,
    dry_run: bool,
    role_names: Sequence[str] | None = None,
    path_prefix: str = "/",
    next_token: str | None = None,
    budget_seconds: float | None = None,
    trigger: str = "scan",
    mode: Mode | None = None,
    account: str = "",
    progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Scan the account (or the named roles), evaluating from the listing; read and act only where needed.

    ``mode`` defaults to ``dry-run`` for a dry run and ``enforce`` otherwise (a scan with fixes is an
    explicit request); the sweep passes the configured mode. Results come back within the time budget,
    with a ``next_token`` to continue.
    """
    run_mode = Mode.DRY_RUN if dry_run else (mode or Mode.ENFORCE)
    run = Run(mode=run_mode, trigger=trigger, max_fixes=deps.settings.max_fixes_per_run, tally={})
    if budget_seconds is not None:
        run.deadline = time.monotonic() + budget_seconds
    state = decode_token(next_token) if next_token else {}
    request_key = request_digest(role_names, path_prefix)
    if state and state.get("request") != request_key:
        raise BadToken("next_token belongs to a different request")
    results: list[RoleResult] = []
    missing: list[str] = []
    token: str | None = None
    try:
        if role_names:
            start = int(state.get("skip", 0))
            for index in range(start, len(role_names)):
                if run.out_of_time() and results:
                    token = encode_token({"request": request_key, "skip": index})
                    break
                role = deps.iam.get_role(role_names[index])
                if role is None:
                    missing.append(role_names[index])
                    continue
                results.append(_kept(process_role(role, deps, run)))
                if progress:
                    progress(len(results))
        else:
            token = _scan_listing(
                deps,
                run,
                path_prefix=path_prefix,
                marker=state.get("marker"),
                skip=int(state.get("skip", 0)),
                listing=state.get("listing", LISTING_ROLES) if state else None,
                request_key=request_key,
                results=results,
                progress=progress,
            )
    finally:
        # Owners hear about what was done even when the scan stops on an error part-way.
        for name, count in (run.tally or {}).items():
            deps.metrics.add_metric(name, count)
        send_notices(deps, run, digest=True)
        if trigger == "sweep":
            record_findings(deps, results)
    account_id = account or (results[0].role_arn.split(":")[4] if results else "")
    return ScanReport(
        account=account_id, complete=token is None, next_token=token, results=tuple(results), missing=tuple(missing)
    )


@dataclass(frozen=True)
class _Listed:
    """A role from the listing, its evaluation and, in a dry run, the tag read already under way for it."""

    role: RoleRecord
    evaluation: Evaluation
    read: Future[RoleRecord | None] | None = None


@dataclass(frozen=True)
class _Page:
    """A ListRoles page, evaluated: where it starts (for a continuation token) and its roles from ``skip``."""

    marker: str | None  # the marker it was asked for with (None: the first page)
    skip: int  # its roles before this one were handled by an earlier call
    size: int
    next_marker: str | None
    listed: list[_Listed]

    @property
    def cut_short(self) -> bool:
        """The budget ran out while the page was evaluated: the scan continues from its first role not evaluated."""
        return self.skip + len(self.listed) < self.size


def _scan_listing(
    deps: Deps,
    run: Run,
    *,
    path_prefix: str,
    marker: str | None,
    skip: int,
    listing: str | None,
    request_key: str,
    results: list[RoleResult],
    progress: Callable[[int], None] | None,
) -> str | None:
    """Scan the account page by page from ``marker``/``skip``; the continuation token, or None when done.

    The time budget is checked before every role. A dry run overlaps its IAM calls (see the top of this
    module); a run that may write fetches each page when it gets to it and reads each role just before
    deciding on it (on a tag-carrying listing: just before writing it), one call at a time, keeping the
    read-to-write window short.
    """
    pages = Listing(deps.iam, path_prefix, listing)

    def cut(page_marker: str | None, index: int) -> str:
        return encode_token({"request": request_key, "listing": pages.source, "marker": page_marker, "skip": index})

    def keep(result: RoleResult) -> None:
        results.append(_kept(result))
        if progress and len(results) % 100 == 0:
            progress(len(results))

    evaluations = Evaluations()
    if run.mode is Mode.DRY_RUN:
        return _scan_overlapped(
            deps,
            run,
            pages=pages,
            marker=marker,
            skip=skip,
            cut=cut,
            keep=keep,
            results=results,
            evaluations=evaluations,
        )
    while True:
        page = pages.page(marker)
        listed = _evaluate_page(page.roles[skip:], deps, run, started=bool(results), evaluations=evaluations)
        for index, item in enumerate(listed, start=skip):
            if run.out_of_time() and results:
                return cut(marker, index)
            keep(process_role(item.role, deps, run, evaluation=item.evaluation, evaluations=evaluations, listed=True))
        if skip + len(listed) < len(page.roles):
            return cut(marker, skip + len(listed))
        if page.marker is None:
            return None
        marker, skip = page.marker, 0
        if run.out_of_time():
            return cut(marker, 0)


def _scan_overlapped(
    deps: Deps,
    run: Run,
    *,
    pages: Listing,
    marker: str | None,
    skip: int,
    cut: Callable[[str | None, int], str],
    keep: Callable[[RoleResult], None],
    results: Sequence[RoleResult],
    evaluations: Evaluations,
) -> str | None:
    """The dry run's pipeline: decisions in listing order, IAM calls ahead of them, within bounds.

    Page N+1 is fetched while page N is evaluated and decided. While a decision waits for its read, page
    N+1, once it has arrived, is evaluated and its reads queued behind page N's, so the readers do not
    idle at a page boundary. At most three pages are held: one being decided, one evaluated ahead, one on
    its way. A listing that carries tags leaves nothing to read: its reader threads are never started.
    """
    lister = ThreadPoolExecutor(1, thread_name_prefix="scan-list")
    reader = ThreadPoolExecutor(deps.settings.scan_concurrency, thread_name_prefix="scan-read")
    ahead: deque[_Page] = deque()
    upcoming: tuple[str | None, int, Future[Any]] | None = None
    stuck = False  # a read the budget could not wait for: left behind, not waited on

    def fetch(page_marker: str | None, page_skip: int) -> None:
        nonlocal upcoming
        future = lister.submit(pages.page, page_marker)
        upcoming = (page_marker, page_skip, future)

    def evaluate_upcoming() -> None:
        nonlocal upcoming
        assert upcoming is not None
        page_marker, page_skip, future = upcoming
        page = future.result()
        upcoming = None
        if page.marker is not None and not run.out_of_time():
            fetch(page.marker, 0)
        started = bool(results or ahead)
        listed = _evaluate_page(
            page.roles[page_skip:], deps, run, started=started, reads=reader, evaluations=evaluations
        )
        ahead.append(_Page(page_marker, page_skip, len(page.roles), page.marker, listed))

    try:
        # The readers start while the first page is on its way, if the scan lists with ListRoles; a listing
        # refused on its first page switches to ListRoles from the lister's thread, which starts them then.
        pages.when_roles(lambda: _start_threads(reader, deps.settings.scan_concurrency))
        fetch(marker, skip)
        evaluate_upcoming()
        while ahead:
            page = ahead[0]
            for index, item in enumerate(page.listed, start=page.skip):
                decided = bool(results)
                if run.out_of_time() and decided:
                    return cut(page.marker, index)
                if item.read is not None and not item.read.done():
                    if upcoming is not None and len(ahead) == 1:
                        wait((item.read, upcoming[2]), timeout=_remaining(run, decided), return_when=FIRST_COMPLETED)
                        if not item.read.done() and upcoming[2].done() and upcoming[2].exception() is None:
                            evaluate_upcoming()
                    if decided and not _arrives_in_time(item.read, run):
                        stuck = True
                        return cut(page.marker, index)
                keep(
                    process_role(
                        item.role, deps, run, evaluation=item.evaluation, read=item.read, evaluations=evaluations
                    )
                )
            if page.cut_short:
                return cut(page.marker, page.skip + len(page.listed))
            ahead.popleft()
            if page.next_marker is None:
                return None
            if run.out_of_time():
                return cut(page.next_marker, 0)
            if not ahead:
                if upcoming is None:
                    fetch(page.next_marker, 0)
                evaluate_upcoming()
        return None
    except KeyboardInterrupt:
        stuck = True  # Ctrl-C in the CLI: a call in flight is left to end on its own, not waited for
        raise
    finally:
        for pool in (lister, reader):
            # Calls not yet started when the scan stops early are cancelled; one already sent is waited
            # for (each is bounded by the client's timeouts), unless it is what overran the budget.
            pool.shutdown(wait=not stuck, cancel_futures=True)


# How long a reader thread started ahead waits for the others to start (a thread that cannot start at
# all, say at a process's thread limit, is then started by the pool with the read that needs it).
_THREAD_START_SECONDS = 1.0


def _start_threads(pool: ThreadPoolExecutor, count: int) -> None:
    """Start the pool's ``count`` threads now, while the first page is on its way.

    The pool otherwise starts a thread as each read is queued, and each start waits for the new thread
    to run: with reads already in flight parsing their answers under the interpreter lock, that is up to
    one switch interval (5 ms) per thread, and the first reads go out one by one instead of together.
    Each thread waits at a barrier until all have started, so the pool cannot hand one task to a thread
    that already exists and leave the others unstarted.
    """
    started = threading.Barrier(count, timeout=_THREAD_START_SECONDS)

    def arrive() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            started.wait()

    try:
        for _ in range(count):
            pool.submit(arrive)
    except RuntimeError:
        started.abort()  # no more threads can start: the ones waiting go back to the pool


def _remaining(run: Run, decided: bool) -> float | None:
    """How long a decision may wait for its read: until the deadline, or for good before the first decision."""
    if run.deadline is None or not decided:
        return None
    return max(0.0, run.deadline - time.monotonic())


def _arrives_in_time(read: Future[RoleRecord | None], run: Run) -> bool:
    """Wait for a read until the deadline at most (adaptive retries may pace reads when IAM throttles)."""
    if run.deadline is None or read.done():
        return True
    try:
        read.exception(timeout=max(0.0, run.deadline - time.monotonic()))
    except TimeoutError:
        return False
    return True


def _kept(result: RoleResult) -> RoleResult:
    """What a scan keeps of a role: a compliant or not-applicable one keeps no document, only its row."""
    if result.verdict not in (Verdict.COMPLIANT, Verdict.NOT_APPLICABLE):
        return result
    return RoleResult(
        role_name=result.role_name,
        role_arn=result.role_arn,
        verdict=result.verdict,
        action=result.action,
        reason=result.reason,
        evaluation=Evaluation(
            verdict=result.evaluation.verdict,
            problems=result.evaluation.problems,
            services=result.evaluation.services,
            wide=result.evaluation.wide,
        ),
        owner=result.owner,
        change_id=result.change_id,
    )


def _evaluate_page(
    roles: Sequence[RoleRecord],
    deps: Deps,
    run: Run,
    *,
    started: bool,
    evaluations: Evaluations,
    reads: ThreadPoolExecutor | None = None,
) -> list[_Listed]:
    """Evaluate a page's roles from the listing, checking the time budget before each one.

    No role can push a page past the budget: evaluation stops at the deadline (after at least one role
    in the whole run, so a run always makes progress) and the scan continues from there next time.
    With ``reads`` (a dry run), the read of each role that needs one starts as soon as it is evaluated.
    """
    listed: list[_Listed] = []
    for role in roles:
        if run.out_of_time() and (started or listed):
            break
        evaluation = evaluations.of(role, deps)
        read = _queue_read(reads, role, deps) if reads and needs_read(role, evaluation, deps) else None
        listed.append(_Listed(role, evaluation, read))
    return listed


def _queue_read(reads: ThreadPoolExecutor, role: RoleRecord, deps: Deps) -> Future[RoleRecord | None] | None:
    """Start reading the role's tags; None when no thread can be started for it (the process's limit).

    The role is then read when it is decided, as a scan that may write reads every role. The pool may
    still carry out the read it had queued; the decision does not wait for it.
    """
    try:
        return reads.submit(deps.iam.read_tags, role)
    except RuntimeError:
        return None


def scan_to_end(
    deps: Deps,
    *,
    dry_run: bool,
    role_names: Sequence[str] | None = None,
    path_prefix: str = "/",
    account: str = "",
    progress: Callable[[], Callable[[int], None] | None] = lambda: None,
) -> Iterator[ScanReport]:
    """A scan run to its end: each report continues where the last one stopped (its ``next_token``).

    ``progress`` gives each page's progress callback (a caller without a time budget, such as the CLI).
    """
    token = None
    while True:
        report = scan(
            deps,
            dry_run=dry_run,
            role_names=role_names,
            path_prefix=path_prefix,
            next_token=token,
            account=account,
            progress=progress(),
        )
        yield report
        if report.complete:
            return
        token = report.next_token


def sweep(deps: Deps, *, budget_seconds: float | None = None) -> dict[str, Any]:
    """The scheduled sweep: the configured mode over every role, resuming where a cut-short run stopped."""
    cursor = deps.cursor
    token = None
    if cursor is not None:
        try:
            token = cursor.load()
        except AwsError as exc:
            deps.logger.warning("sweep cursor unreadable; starting from the top", extra={"error": str(exc)})
    mode = deps.settings.mode
    try:
        report = scan(
            deps,
            dry_run=mode is Mode.DRY_RUN,
            mode=mode,
            next_token=token,
            budget_seconds=budget_seconds,
            trigger="sweep",
        )
    except BadToken:
        deps.logger.warning("stale sweep cursor discarded")
        report = scan(deps, dry_run=mode is Mode.DRY_RUN, mode=mode, budget_seconds=budget_seconds, trigger="sweep")
    except AwsError as exc:
        if cursor is not None and token is not None:
            # The cursor itself may be what fails (a marker IAM no longer accepts): forget it, so the
            # next sweep starts from the top instead of failing the same way every day.
            deps.logger.warning("resumed sweep failed; its cursor is discarded", extra={"error": str(exc)})
            try:
                cursor.save(None)
            except AwsError as unsaved:
                deps.logger.warning("sweep cursor could not be cleared", extra={"error": str(unsaved)})
        raise
    if cursor is not None:
        try:
            cursor.save(report.next_token)
        except AwsError as exc:
            deps.logger.warning("sweep cursor not saved; the next sweep starts from the top", extra={"error": str(exc)})
    summary = {
        "status": "complete" if report.complete else "partial",
        "resumed": token is not None,
        "summary": report.summary,
        "actions": _count_actions(report.results),
    }
    deps.logger.info("sweep finished", extra=summary)
    return summary


def _count_actions(results: Sequence[RoleResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action.value] = counts.get(result.action.value, 0) + 1
    return counts
