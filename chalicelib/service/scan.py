"""Scans (REST, CLI) and the scheduled sweep: evaluate from the listing, read and act only where needed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.models import Action, Evaluation, Mode, RoleRecord, Verdict
from chalicelib.domain.plan import RoleResult, Run
from chalicelib.service.deps import Deps
from chalicelib.service.enforce import evaluate_role, needs_read, process_role, send_notices
from chalicelib.service.findings import record_findings

# GetRole calls a dry-run scan keeps in flight: the reads of flagged roles are independent and each one
# costs a round trip to IAM, so overlapping a few of them divides a scan's wall time; kept small because
# IAM throttles bursts (botocore's standard retries absorb the odd throttle).
SCAN_READ_CONCURRENCY = 4

# The scan report's schema (POST /scans, `deputy-guard scan --format json`), documented in docs/scan-report.md.
SCAN_REPORT_SCHEMA_VERSION = "1"

# --- scans ------------------------------------------------------------------------------------------


class BadToken(ValueError):
    """A next_token that deputy-guard did not issue (or for another request)."""


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


def request_digest(role_names: Sequence[str] | None, path_prefix: str) -> str:
    """What a continuation token is bound to: a digest, so a token for 1,000 role names stays short."""
    request = json.dumps({"names": list(role_names or []), "prefix": path_prefix}, separators=(",", ":"))
    return hashlib.sha256(request.encode()).hexdigest()[:32]


def encode_token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadToken("next_token is not one deputy-guard issued") from exc
    if not isinstance(state, dict):
        raise BadToken("next_token is not one deputy-guard issued")
    skip, marker = state.get("skip", 0), state.get("marker")
    if type(skip) is not int or skip < 0 or not (marker is None or isinstance(marker, str)):
        raise BadToken("next_token is not one deputy-guard issued")
    return state


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
    run = Run(mode=run_mode, trigger=trigger, max_fixes=deps.settings.max_fixes_per_run)
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
                results.append(process_role(role, deps, run))
                if progress:
                    progress(len(results))
        else:
            marker: str | None = state.get("marker")
            skip = int(state.get("skip", 0))
            # A dry run writes nothing, so its reads may run ahead of the decisions; a run that may write
            # reads each role just before deciding on it, keeping the read-to-write window short.
            pool = (
                ThreadPoolExecutor(SCAN_READ_CONCURRENCY, thread_name_prefix="scan-read")
                if run.mode is Mode.DRY_RUN
                else None
            )
            try:
                while token is None:
                    page = deps.iam.list_roles_page(path_prefix=path_prefix, marker=marker)
                    listed = _evaluate_page(page.roles[skip:], deps, run, started=bool(results))
                    reads = (
                        {}
                        if pool is None
                        else {
                            role.name: pool.submit(deps.iam.get_role, role.name)
                            for role, evaluation in listed
                            if needs_read(role, evaluation, deps)
                        }
                    )
                    for index, (role, evaluation) in enumerate(listed, start=skip):
                        if run.out_of_time() and results:
                            token = encode_token({"request": request_key, "marker": marker, "skip": index})
                            break
                        read = reads.get(role.name)
                        results.append(process_role(role, deps, run, evaluation=evaluation, read=read))
                        if progress and len(results) % 100 == 0:
                            progress(len(results))
                    for future in reads.values():
                        future.cancel()  # reads not started when the time budget ran out
                    if token is None and skip + len(listed) < len(page.roles):
                        # The budget ran out while evaluating the page: continue from the first role not evaluated.
                        token = encode_token({"request": request_key, "marker": marker, "skip": skip + len(listed)})
                    if token is not None or page.marker is None:
                        break
                    marker, skip = page.marker, 0
                    if run.out_of_time():
                        token = encode_token({"request": request_key, "marker": marker, "skip": 0})
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        # Owners hear about what was done even when the scan stops on an error part-way.
        send_notices(deps, run, digest=True)
        if trigger == "sweep":
            record_findings(deps, results)
    account_id = account or (results[0].role_arn.split(":")[4] if results else "")
    return ScanReport(
        account=account_id, complete=token is None, next_token=token, results=tuple(results), missing=tuple(missing)
    )


def _evaluate_page(
    roles: Sequence[RoleRecord], deps: Deps, run: Run, *, started: bool
) -> list[tuple[RoleRecord, Evaluation]]:
    """Evaluate a page's roles from the listing, checking the time budget before each one.

    No role can push a page past the budget: evaluation stops at the deadline (after at least one role
    in the whole run, so a run always makes progress) and the scan continues from there next time.
    """
    listed: list[tuple[RoleRecord, Evaluation]] = []
    for role in roles:
        if run.out_of_time() and (started or listed):
            break
        listed.append((role, evaluate_role(role, deps)))
    return listed


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
