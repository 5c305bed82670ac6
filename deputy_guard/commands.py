"""The AWS-facing CLI commands: scan, revert, setup (and demo, in deputy_guard.demo).

Settings come from the environment like the Lambda's; credentials from the standard boto3 chain
(``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` honoured). Results go to stdout, logs and progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from chalicelib.domain.settings import Settings, SettingsError, load_settings
from deputy_guard.exits import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deputy_guard.report import render_table


def _fail(message: str) -> int:
    print(f"deputy-guard: {message}", file=sys.stderr)
    return EXIT_ERROR


def _cli_settings() -> Settings:
    return load_settings(os.environ)


def _cli_deps(settings: Settings) -> Any:
    from chalicelib.runtime.logs import make_logger
    from chalicelib.runtime.wiring import build_deps

    # People read the CLI's results, not its decision log: warnings only unless LOG_LEVEL asks for more.
    level = settings.log_level if os.environ.get("LOG_LEVEL") else "WARNING"
    logger = make_logger(settings.service_name, level=level, to_stderr=True)
    return build_deps(settings, logger=logger, idempotent=False)


def run_scan(args: argparse.Namespace) -> int:
    """`deputy-guard scan`: dry run unless --fix; exit 0 when clean, 1 when anything needs action."""
    if getattr(args, "accounts", None):
        from deputy_guard.org_scan import run_org_scan

        return run_org_scan(args)
    from chalicelib.adapters import aws
    from chalicelib.runtime.handlers import valid_path_prefix, valid_role_name
    from chalicelib.service.scan import scan

    path_prefix = args.path_prefix or "/"
    if not valid_path_prefix(path_prefix):
        return _fail(f"--path-prefix must be an IAM path such as / or /teams/data/, not {path_prefix!r}")
    bad = [name for name in args.role or [] if not valid_role_name(name)]
    if bad:
        return _fail(f"--role: invalid role name {bad[0]!r}")
    try:
        settings = _cli_settings()
        deps = _cli_deps(settings)
        account, _arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        progress = _progress(sys.stderr) if sys.stderr.isatty() else None
        reports = []
        token = None
        while True:
            report = scan(
                deps,
                dry_run=not args.fix,
                role_names=args.role or None,
                path_prefix=path_prefix,
                next_token=token,
                account=account,
                progress=progress,
            )
            reports.append(report)
            if report.complete:
                break
            token = report.next_token
    except SettingsError as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(f"AWS call failed: {exc}")
    merged = _merge(reports)
    if progress:
        sys.stderr.write("\n")
    if args.format == "json":
        print(json.dumps(merged.to_dict(), indent=2, sort_keys=False))
    else:
        print(render_table(merged.to_dict()))
    return EXIT_FINDINGS if merged.needs_action or merged.missing else EXIT_OK


def _merge(reports: list[Any]) -> Any:
    from chalicelib.service.scan import ScanReport

    results = tuple(r for report in reports for r in report.results)
    missing = tuple(m for report in reports for m in report.missing)
    return ScanReport(account=reports[-1].account, complete=True, next_token=None, results=results, missing=missing)


def _progress(stream: TextIO) -> Any:
    def show(count: int) -> None:
        stream.write(f"\rscanned {count} roles…")
        stream.flush()

    return show


def run_revert(args: argparse.Namespace) -> int:
    """`deputy-guard revert ROLE [--force]`."""
    from chalicelib.adapters import aws
    from chalicelib.service.revert import revert

    try:
        settings = _cli_settings()
        deps = _cli_deps(settings)
        try:
            _account, actor = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        except aws.AwsError:
            actor = None
        result = revert(args.role, deps, force=args.force, actor=actor, caller_credentials=True)
    except SettingsError as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(f"AWS call failed: {exc}")
    stream = sys.stdout if result.status == "reverted" else sys.stderr
    print(result.message, file=stream)
    return EXIT_OK if result.status == "reverted" else EXIT_FINDINGS if result.status == "refused" else EXIT_ERROR


def run_setup(args: argparse.Namespace) -> int:
    """`deputy-guard setup`: create the DynamoDB table the settings name, if missing (idempotent)."""
    from chalicelib.adapters import aws

    try:
        settings = _cli_settings()
        created = aws.DynamoTable(aws.make_client("dynamodb"), settings.table).ensure_exists()
    except SettingsError as exc:
        return _fail(str(exc))
    except aws.AwsError as exc:
        return _fail(f"AWS call failed: {exc}")
    print(f"table {settings.table}: {'created' if created else 'already exists'}")
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from deputy_guard.demo import run_demo as demo

    return demo(args)
