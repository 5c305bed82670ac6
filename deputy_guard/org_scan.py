"""`deputy-guard scan --accounts org|ID,...`: scan many accounts in parallel with the caller's credentials.

Each account is scanned through the member role (sts:AssumeRole from the caller's credentials; the caller's
own account with the caller's credentials), by the same ``chalicelib.service.scan.scan`` as one account.
An account that fails (the role cannot be assumed, IAM keeps throttling) is reported with its error and
never stops the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.asff import to_findings
from chalicelib.domain.models import Verdict
from chalicelib.domain.plan import RoleResult
from chalicelib.domain.scope import ScopeError, ScopeKind, parse_member_role, parse_scope
from chalicelib.domain.settings import SettingsError
from deputy_guard.exits import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deputy_guard.formats import to_csv, to_sarif
from deputy_guard.html_report import AccountPart, generated_at, render_html
from deputy_guard.interrupt import Counter, Tally, stop_between_roles, watched
from deputy_guard.report import count_outcomes, no_channel_note, plural, render_table
from deputy_guard.sarif import tool_version
from deputy_guard.scan_output import emit, keep

ORG_SCAN_SCHEMA_VERSION = "1"
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
EXIT_EPILOG = """\
exit status with --accounts: 0 every account scanned and clean; 1 every account scanned, something
needs action; 2 an account could not be scanned (its error is in the report and on stderr, and the
other accounts are reported all the same), or bad input.
"""


def concurrency(text: str) -> int:
    """argparse type for --concurrency: 1 to MAX_CONCURRENCY accounts at once."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_CONCURRENCY}, not {value}")
    return value


@dataclass
class AccountOutcome:
    """One account's part of the report."""

    account: str
    status: str = "ok"  # ok | failed
    error: str | None = None
    complete: bool = False
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    results: tuple[RoleResult, ...] = ()  # what the report's rows were made from (for sarif, asff, html)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"account": self.account, "status": self.status}
        if self.error is not None:
            entry["error"] = self.error
        entry["complete"] = self.complete
        entry["summary"] = self.report.get("summary", {v.value: 0 for v in Verdict})
        entry["results"] = self.report.get("results", [])
        if self.report.get("missing"):
            entry["missing"] = self.report["missing"]
        return entry


def org_report(outcomes: Sequence[AccountOutcome]) -> dict[str, Any]:
    """``{"schema_version", "accounts": [...], "summary"}``; the summary adds up every account's verdicts."""
    totals = {v.value: 0 for v in Verdict}
    for outcome in outcomes:
        for verdict, count in outcome.report.get("summary", {}).items():
            totals[verdict] = totals.get(verdict, 0) + count
    return {
        "schema_version": ORG_SCAN_SCHEMA_VERSION,
        "accounts": [outcome.to_dict() for outcome in outcomes],
        "summary": totals,
    }


def exit_code(outcomes: Sequence[AccountOutcome], needs_action: Callable[[AccountOutcome], bool]) -> int:
    """2 when an account could not be scanned, else 1 when anything needs action, else 0."""
    if any(outcome.status != "ok" for outcome in outcomes):
        return EXIT_ERROR
    return EXIT_FINDINGS if any(needs_action(outcome) for outcome in outcomes) else EXIT_OK


def scan_accounts(
    directory: Any,
    accounts: Sequence[str],
    *,
    dry_run: bool,
    role_names: Sequence[str] | None,
    path_prefix: str,
    workers: int,
    on_done: Callable[[AccountOutcome], None] | None = None,
    tally: Tally | None = None,
) -> list[AccountOutcome]:
    """Scan every account, ``workers`` at a time; outcomes in the order of ``accounts``.

    With ``tally``, roles scanned and fixed are counted into it, and a stop it asks for (Ctrl-C) ends
    every account's scan between two roles.
    """

    def one(account: str) -> AccountOutcome:
        if tally is not None:
            tally.checkpoint()  # an account not started yet is not started after a Ctrl-C
        outcome = scan_one(
            directory, account, dry_run=dry_run, role_names=role_names, path_prefix=path_prefix, tally=tally
        )
        if on_done is not None:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max(1, min(workers, len(accounts) or 1)), thread_name_prefix="scan-account") as pool:
        return list(pool.map(one, accounts))


def scan_one(
    directory: Any,
    account: str,
    *,
    dry_run: bool,
    role_names: Sequence[str] | None,
    path_prefix: str,
    tally: Tally | None = None,
) -> AccountOutcome:
    """One account, page after page until complete; a failure becomes the outcome's error."""
    from chalicelib.service.accounts import AccountUnavailable
    from chalicelib.service.scan import ScanReport, scan_to_end

    started = time.monotonic()
    outcome = AccountOutcome(account)
    reports: list[ScanReport] = []
    try:
        deps = directory.deps_for(account)
        if tally is not None:
            deps = watched(deps, tally)
        pages = scan_to_end(
            deps,
            dry_run=dry_run,
            role_names=role_names,
            path_prefix=path_prefix,
            account=account,
            progress=lambda: Counter(tally) if tally is not None else None,
        )
        reports.extend(pages)  # page by page: a failure keeps the pages already scanned
        outcome.complete = True
    except AccountUnavailable as exc:
        outcome.status = "failed"
        outcome.error = f"cannot assume {directory.role_arn(account)}: {exc.cause.code}: {exc.cause.message}"
    except AwsError as exc:
        outcome.status = "failed"
        outcome.error = f"AWS call failed: {exc}"
    if reports:
        results = tuple(r for report in reports for r in report.results)
        missing = tuple(m for report in reports for m in report.missing)
        merged = ScanReport(account, outcome.complete, None, results, missing)
        outcome.report = merged.to_dict()
        outcome.report["needs_action"] = merged.needs_action
        outcome.results = results
    outcome.seconds = time.monotonic() - started
    return outcome


def run_org_scan(args: argparse.Namespace) -> int:
    """The CLI entry point for ``scan --accounts`` (``run_scan`` has checked the filters and the formats)."""
    from chalicelib.adapters import aws
    from chalicelib.runtime.organization import build_accounts
    from deputy_guard.commands import (
        Unready,
        _cli_deps,
        _cli_settings,
        _fail,
        check_audit_table,
        note_lapsed_exemptions,
        note_unsigned_fixes,
    )

    path_prefix = args.path_prefix or "/"
    try:
        scope = parse_scope(args.accounts)
        member_role = parse_member_role(args.member_role)
    except ScopeError as exc:
        return _fail(f"--accounts/--member-role: {exc}")
    tally: Tally = args.tally
    try:
        settings = _cli_settings(args)
        if args.fix:
            # Every account's records go to the caller's (central) table: without it every fix would fail.
            check_audit_table(settings)
        deps = _cli_deps(settings, verbose=args.verbose)
        directory = build_accounts(settings, deps, scope=scope, member_role=member_role)
        # A list scans exactly the accounts named; org scans every ACTIVE account of the organization.
        accounts = scope.accounts if scope.kind is ScopeKind.LIST else directory.accounts()
    except (SettingsError, Unready) as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(f"could not list the organization's accounts: {exc}")
    if args.fix:
        note_unsigned_fixes(settings)
    workers = args.concurrency or DEFAULT_CONCURRENCY
    progress = _progress(len(accounts)) if sys.stderr.isatty() else None
    again = "`deputy-guard scan --fix --accounts ...` again" if args.fix else "the scan again for a full report"
    tally.left = f"accounts not finished were left as they were; run {again}"
    try:
        with stop_between_roles(tally):
            outcomes = scan_accounts(
                directory,
                accounts,
                dry_run=not args.fix,
                role_names=args.role or None,
                path_prefix=path_prefix,
                workers=workers,
                on_done=progress,
                tally=tally,
            )
    finally:
        if progress:
            sys.stderr.write("\r\x1b[K")
    for outcome in outcomes:
        if outcome.status != "ok":
            print(f"deputy-guard: account {outcome.account}: {outcome.error}", file=sys.stderr)
    note_lapsed_exemptions(settings, directory.central.clock().date())
    if args.fix and tally.fixed and deps.notifier is None:
        print(no_channel_note(tally.fixed), file=sys.stderr)
    shown = [only(outcome, args.statuses) for outcome in outcomes]
    emit(renderers(shown, args.formats, region=aws.current_region()), args.output_dir, sys.stdout.write)
    return exit_code(outcomes, lambda outcome: bool(outcome.report.get("needs_action")))


def only(outcome: AccountOutcome, statuses: Sequence[str]) -> AccountOutcome:
    """The account's outcome with only the roles of ``statuses`` (the summary counts those; needs_action all)."""
    if not statuses or not outcome.report:
        return outcome
    from chalicelib.service.scan import ScanReport

    kept = keep(outcome.results, statuses)
    report = ScanReport(outcome.account, outcome.complete, None, kept, tuple(outcome.report.get("missing", [])))
    shown = report.to_dict()
    shown["needs_action"] = outcome.report.get("needs_action", False)
    return replace(outcome, report=shown, results=kept)


def renderers(
    outcomes: Sequence[AccountOutcome], formats: Sequence[str], *, region: str, now: datetime | None = None
) -> dict[str, Callable[[], str]]:
    """How each format renders the accounts' outcomes (each called once, when it is written)."""
    moment = now or datetime.now(UTC)
    results = [result for outcome in outcomes for result in outcome.results]

    def text(name: str) -> str:
        if name == "json":
            return json.dumps(org_report(outcomes), indent=2) + "\n"
        if name == "csv":
            return to_csv({"account": "", "results": [r.to_report() for r in results]})
        if name == "sarif":
            return json.dumps(to_sarif(results), indent=2) + "\n"
        if name == "asff":
            return json.dumps(to_findings(results, region=region, now=moment), indent=2) + "\n"
        if name == "html":
            parts = [AccountPart(o.account, o.results, o.error) for o in outcomes]
            return render_html(parts, generated=generated_at(moment), version=tool_version(), many=True)
        return render_org_table(outcomes) + "\n"

    return {name: partial(text, name) for name in formats}


def render_org_table(outcomes: Sequence[AccountOutcome]) -> str:
    """Each account's table, then one line for the organization, counted as each account's line is."""
    blocks: list[str] = []
    for outcome in outcomes:
        if outcome.status != "ok":
            blocks.append(f"account {outcome.account}: FAILED: {outcome.error}")
        else:
            blocks.append(render_table(outcome.report))
    failed = sum(outcome.status != "ok" for outcome in outcomes)
    rows = [row for outcome in outcomes for row in outcome.report.get("results", [])]
    counts = ", ".join(f"{count} {name}" for name, count in count_outcomes(rows).items()) or "nothing to report"
    blocks.append(f"{plural(len(outcomes), 'account')} ({failed} failed): {plural(len(rows), 'role')}: {counts}")
    return "\n\n".join(blocks)


def _progress(total: int) -> Callable[[AccountOutcome], None]:
    lock = threading.Lock()
    done = [0]

    def show(_outcome: AccountOutcome) -> None:
        with lock:
            done[0] += 1
            sys.stderr.write(f"\rscanned {done[0]}/{total} accounts…")
            sys.stderr.flush()

    return show
