"""The AWS-facing CLI commands: scan and setup (revert, remediate, exempt: deputy_guard.actions; demo).

Settings come from the environment like the Lambda's; credentials from the standard boto3 chain
(``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` honoured). Results go to stdout, logs and progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from datetime import date
from functools import partial
from typing import Any

from chalicelib.domain.settings import Settings, SettingsError, load_settings
from deputy_guard.aws_cli import describe_aws_failure, fail
from deputy_guard.exits import EXIT_FINDINGS, EXIT_OK
from deputy_guard.formats import render_scan
from deputy_guard.interrupt import Counter, Tally, stop_between_roles, watched
from deputy_guard.progress import Progress
from deputy_guard.report import no_channel_note
from deputy_guard.scan_output import emit, filtered_report

# The partition key the pre-flight reads: no item ever has it, so the query only proves the table is there.
PREFLIGHT_KEY = "preflight#deputy-guard"


def _fail(message: str) -> int:
    return fail(message)


class Unready(Exception):
    """The account is not ready for the command (no audit table): one line, exit 2."""


def check_audit_table(settings: Settings, *, acting_in: str | None = None) -> None:
    """Pre-flight for the commands that write the audit trail (scan --fix, revert...): the table must exist.

    Without it every fix would be refused (the audit write comes first), one error per role; one line
    that names ``deputy-guard setup`` says the same at once. Acting in another account (``acting_in``), the
    table is the caller's own, central one: setting up a table anywhere else would only hide the records.
    """
    from chalicelib.adapters import aws

    table = aws.DynamoTable(aws.make_client("dynamodb"), settings.table)
    try:
        table.query(PREFLIGHT_KEY, limit=1)
    except aws.NotFound:
        if acting_in is not None:
            raise Unready(
                f"the central audit table {settings.table!r} does not exist in {aws.current_region()} of the "
                f"account whose credentials act in account {acting_in}: deputy-guard records every account's "
                "changes in the table of the account it runs in; use that account's credentials "
                "(DEPUTY_GUARD_TABLE names the table)"
            ) from None
        raise Unready(
            f"the audit table {settings.table!r} does not exist in {aws.current_region()}: "
            "run `deputy-guard setup` first (DEPUTY_GUARD_TABLE names the table)"
        ) from None
    except aws.AccessDenied as exc:
        raise Unready(f"the audit table {settings.table!r} cannot be read ({exc.code}): {exc.message}") from None


def note_unsigned_fixes(settings: Settings) -> None:
    """One stderr line before a fix from the CLI without a signing key: its records will not be revertable."""
    if settings.signing_key is None:
        sys.stderr.write(
            "deputy-guard: warning: DEPUTY_GUARD_SIGNING_KEY is not set, so these fixes are recorded unsigned and "
            "deputy-guard will not revert them (restore by hand: docs/security.md)\n"
        )


def _cli_settings(args: argparse.Namespace | None = None) -> Settings:
    """The settings from the environment with the exemptions of the file or SSM parameter they name;
    ``--services`` wins over its variable."""
    from chalicelib.runtime.exemptions import read_ssm_parameter, with_exemptions
    from deputy_guard.services_cli import with_services

    settings = with_exemptions(load_settings(os.environ), read_ssm_parameter)
    return with_services(settings, args) if args is not None else settings


def _cli_deps(settings: Settings, *, verbose: bool = False) -> Any:
    from chalicelib.runtime.logs import make_logger
    from chalicelib.runtime.wiring import build_deps

    # People read the CLI's results, not its decision log: no log record reaches the terminal unless
    # --verbose asks for them (at LOG_LEVEL, else INFO).
    level = settings.log_level if verbose and os.environ.get("LOG_LEVEL") else "INFO"
    logger = make_logger(settings.service_name, level=level, to_stderr=True)
    # Powertools logs through the standard logger named after the service: off unless --verbose.
    logging.getLogger(settings.service_name).disabled = not verbose
    return build_deps(settings, logger=logger, idempotent=False, verify_table=True)


def run_scan(args: argparse.Namespace) -> int:
    """`deputy-guard scan`: dry run unless --fix; exit 0 when clean, 1 when anything needs action, 2 on an error."""
    if args.role and args.path_prefix:
        # A name is exact and IAM role names are unique in an account: a path filter on top could only hide it.
        return _fail("--role and --path-prefix cannot be combined: --role names roles exactly, whatever their path")
    from chalicelib.runtime.handlers import valid_path_prefix, valid_role_name

    path_prefix = args.path_prefix or "/"
    if not valid_path_prefix(path_prefix):
        return _fail(f"--path-prefix must be an IAM path such as / or /teams/data/, not {path_prefix!r}")
    bad = [name for name in args.role or [] if not valid_role_name(name)]
    if bad:
        return _fail(f"--role: invalid role name {bad[0]!r}")
    if args.accounts:
        from deputy_guard.org_scan import run_org_scan

        return run_org_scan(args)
    from chalicelib.adapters import aws
    from chalicelib.service.scan import ScanReport, scan_to_end

    tally: Tally = args.tally
    tally.left = (
        "every fix so far is audited and revertable; run `deputy-guard scan --fix` again to continue"
        if args.fix
        else "nothing was changed; run `deputy-guard scan` again for the full report"
    )
    progress = Progress(sys.stderr)
    try:
        settings = _cli_settings(args)
        deps = watched(_cli_deps(settings, verbose=args.verbose), tally)
        account, _arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        if args.fix:
            check_audit_table(settings)
            note_unsigned_fixes(settings)
        progress.start(f"scanning account {account}")
        reports: list[ScanReport] = []
        # A dry run writes nothing: Ctrl-C stops it at once. A run with fixes stops before its next write.
        with stop_between_roles(tally) if args.fix else contextlib.nullcontext():
            pages = scan_to_end(
                deps,
                dry_run=not args.fix,
                role_names=args.role or None,
                path_prefix=path_prefix,
                account=account,
                progress=lambda: Counter(tally, progress if progress.enabled else None),
            )
            reports.extend(pages)
    except (SettingsError, Unready) as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(describe_aws_failure(exc) or str(exc))
    finally:
        progress.done()
    merged = _merge(reports)
    if args.fix and tally.fixed and deps.notifier is None:
        print(no_channel_note(tally.fixed), file=sys.stderr)
    shown = filtered_report(merged, args.statuses)
    region, cap = aws.current_region(), settings.max_fixes_per_run
    renderers = {name: partial(render_scan, shown, name, region=region, cap=cap) for name in args.formats}
    emit(renderers, args.output_dir, sys.stdout.write)
    sys.stdout.flush()
    note_lapsed_exemptions(settings, deps.clock().date())
    if merged.missing:
        # As `revert` answers for an unknown role: exit 2, after the report of the roles that exist.
        names = ", ".join(repr(name) for name in merged.missing)
        return _fail(f"{'role' if len(merged.missing) == 1 else 'roles'} {names} not found")
    return EXIT_FINDINGS if merged.needs_action else EXIT_OK


def note_lapsed_exemptions(settings: Settings, today: date) -> None:
    """One stderr line per expired central exemption: a stale entry protects nothing, whichever roles it named."""
    for lapsed in settings.exemptions:
        if lapsed.expired(today):
            sys.stderr.write(f"deputy-guard: note: {lapsed.describe_lapsed()}\n")


def _merge(reports: list[Any]) -> Any:
    from chalicelib.service.scan import ScanReport

    results = tuple(r for report in reports for r in report.results)
    missing = tuple(m for report in reports for m in report.missing)
    return ScanReport(account=reports[-1].account, complete=True, next_token=None, results=results, missing=missing)


def run_setup(args: argparse.Namespace) -> int:
    """`deputy-guard setup`: create the DynamoDB table and the audit records' signing key, if missing (idempotent).

    The key is the alias DEPUTY_GUARD_SIGNING_KEY names (default alias/deputy-guard-signing); a key id or ARN
    names a key that already exists.
    """
    from chalicelib.adapters import aws
    from chalicelib.adapters.kms import DEFAULT_SIGNING_KEY_ALIAS, ensure_mac_key

    try:
        settings = _cli_settings()
        created = aws.DynamoTable(aws.make_client("dynamodb"), settings.table).ensure_exists()
        key = settings.signing_key or DEFAULT_SIGNING_KEY_ALIAS
        key_created = ensure_mac_key(aws.make_client("kms"), key) if "alias/" in key else False
    except SettingsError as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(describe_aws_failure(exc) or str(exc))
    print(f"table {settings.table}: {'created' if created else 'already exists'}")
    print(f"signing key {key}: {'created' if key_created else 'already exists'}")
    if settings.signing_key is None:
        print(f"set DEPUTY_GUARD_SIGNING_KEY={key} so that scan --fix signs its audit records and revert verifies them")
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from deputy_guard.demo import run_demo as demo

    return demo(args)
