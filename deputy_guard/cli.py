"""The ``deputy-guard`` command.

``check`` is offline and pure. The AWS-facing subcommands live in ``deputy_guard.commands`` and are
imported only when run, so ``check`` and ``--help`` never pay for boto3.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from chalicelib.domain.models import EngineOptions, Mode, Require
from deputy_guard import actions, api_client, completion, services_cli
from deputy_guard.aws_cli import apply_aws_options, aws_options, guard
from deputy_guard.check_output import FORMATS, failure_line, render
from deputy_guard.checking import CheckOptions, Report, check_paths
from deputy_guard.exits import EXIT_ERROR as EXIT_BAD_INPUT
from deputy_guard.exits import EXIT_FINDINGS, EXIT_OK
from deputy_guard.iac.files import DEFAULT_MAX_FILE_SIZE, parse_size
from deputy_guard.interrupt import EXIT_INTERRUPTED, Tally
from deputy_guard.org_scan import DEFAULT_CONCURRENCY as DEFAULT_ACCOUNT_CONCURRENCY
from deputy_guard.org_scan import EXIT_EPILOG as ORG_EXIT_EPILOG
from deputy_guard.org_scan import concurrency as org_concurrency
from deputy_guard.sarif import tool_version
from deputy_guard.scan_output import FORMAT_ALIASES, FORMAT_CHOICES, STATUS_CHOICES, check_request, names

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "HANDLERS",
    "build_parser",
    "main",
    "run_api",
    "run_check",
    "run_completion",
    "run_demo",
    "run_exempt",
    "run_remediate",
    "run_revert",
    "run_scan",
    "run_setup",
]

PROG = "deputy-guard"

_ACCOUNT = re.compile(r"\d{12}")
_PARTITION = re.compile(r"aws(?:-[a-z]+)*")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


class UsageError(Exception):
    """Bad input on the command line or in the document: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits on errors; one line and a return code suit scripts,
    # and let main() stay callable from tests without SystemExit.
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _account_id(text: str) -> str:
    if not _ACCOUNT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a 12-digit AWS account id: {text!r}")
    return text


def _partition(text: str) -> str:
    if not _PARTITION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not an AWS partition (aws, aws-cn, aws-us-gov...): {text!r}")
    return text


def _size_quota(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of characters: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _file_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _role_path(text: str) -> str:
    if not (text.startswith("/") and text.endswith("/")):
        raise argparse.ArgumentTypeError(f"an IAM path starts and ends with '/': {text!r}")
    return text


_CHECK_EPILOG = """\
Each PATH is a file, a directory (walked recursively; hidden folders and files other than
*.json, *.yaml, *.yml and *.template are skipped, as is anything that is none of the kinds below)
or - for stdin (the default). Recognised by content: a trust policy, a GetRole or ListRoles response,
a CloudFormation template in JSON or YAML (SAM and CDK cdk.out included: every AWS::IAM::Role),
a Terraform plan from `terraform show -json` (every aws_iam_role it creates, updates or keeps),
and Terraform sources: *.tf files (every aws_iam_role and awscc_iam_role, local modules included).

The role's account decides what "pinned" means, so it must be known:
  * --account ID, or
  * a GetRole response as input (for example `aws iam get-role --role-name NAME`, or one element
    of ListRoles' Roles): its role ARN gives the account, the partition and the path, or
  * a template's ${AWS::AccountId} (or a plan's aws_caller_identity): the deploying account.
It is never guessed from the policy: a backdoored policy names the attacker's account, and taking
that as the role's own would call it compliant. Without --account, a template's literal account
id is reported as account_unknown, and a plain trust policy is refused.

exit status: 0 compliant or not_applicable, 1 non_compliant or needs_review, 2 bad input
(reported on stderr after every other input has been checked).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``deputy-guard`` argument parser with every subcommand registered."""
    parser = _Parser(
        prog=PROG,
        description="Find and fix IAM roles that trust Step Functions without "
        "confused-deputy conditions (aws:SourceArn, aws:SourceAccount).",
        parents=[aws_options(_Parser, on_subcommand=False)],
        epilog="Run `deputy-guard COMMAND --help` for a command's options. Exit status: 0 clean, "
        "1 something needs action, 2 bad input or an error. Shell completion: `deputy-guard completion bash|zsh`.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {tool_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # --profile and --region work before the command and after it; only the AWS-facing commands take them.
    aws_flags = aws_options(_Parser, on_subcommand=True)

    check = commands.add_parser(
        "check",
        help="evaluate trust policies, templates and plans offline and propose fixes",
        description="Evaluate trust policies offline, in policy files, GetRole output, CloudFormation "
        "(SAM, CDK) templates, Terraform plans and .tf sources: verdict, problems and the fixed policy.",
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a file, a directory to walk, or - for stdin (default: stdin, when it is not a terminal)",
    )
    check.add_argument(
        "--max-file-size",
        type=_file_size,
        default=DEFAULT_MAX_FILE_SIZE,
        metavar="BYTES",
        help="refuse inputs larger than this (512k, 20M...; default: %(default)s bytes)",
    )
    check.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="skip named files that are none of the kinds below, as a directory walk does (for pre-commit)",
    )
    check.add_argument(
        "--account",
        type=_account_id,
        metavar="ID",
        help="the role's 12-digit account id (see below for when it may be omitted)",
    )
    check.add_argument(
        "--partition",
        type=_partition,
        metavar="P",
        help="the role's partition (default: from the role ARN of a GetRole input, else aws; "
        "a value contradicting that ARN is refused)",
    )
    check.add_argument(
        "--path",
        type=_role_path,
        metavar="PATH",
        help="the role's path; /aws-service-role/... is service-linked (default: from the input, else /)",
    )
    check.add_argument(
        "--size-quota",
        type=_size_quota,
        metavar="N",
        help="the account's trust-policy size quota in characters "
        f"(default: DEPUTY_GUARD_SIZE_QUOTA, else {EngineOptions().size_quota})",
    )
    check.add_argument(
        "--require",
        choices=[r.value for r in Require],
        help="pins each Step Functions statement needs: both keys or either "
        f"(default: DEPUTY_GUARD_REQUIRE, else {Require.BOTH.value})",
    )
    services_cli.add_services_flag(check)
    check.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text for people, json for tools, sarif for code scanning (default: %(default)s)",
    )

    # No log record reaches the terminal unless asked for.
    logs = _Parser(add_help=False)
    logs.add_argument("--verbose", action="store_true", help="show the bot's log records on stderr")
    scan = commands.add_parser(
        "scan",
        parents=[aws_flags, logs],
        help="evaluate the roles of the current AWS account",
        description="Evaluate (and with --fix, repair) the roles of the account of "
        "the current credentials. Dry run unless --fix.",
        epilog=ORG_EXIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("--fix", action="store_true", help="apply the fixes (default: dry run)")
    scan.add_argument("--role", action="append", dest="role", metavar="NAME", help="only this role; repeat for more")
    scan.add_argument(
        "--path-prefix", metavar="PREFIX", help="only roles under this IAM path (not with --role, which is exact)"
    )
    scan.add_argument(
        "--format",
        choices=FORMAT_CHOICES,
        default="table",
        metavar="FORMAT[,FORMAT...]",
        help="table (or text) for people, json for the /scans report (docs/scan-report.md), csv for spreadsheets, "
        "sarif for code scanning, asff for `aws securityhub batch-import-findings`, html for a self-contained "
        "page; several, comma-separated, with --output-dir (default: %(default)s)",
    )
    scan.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write each --format to its own file in DIR (deputy-guard-scan.json, .csv, .sarif, .asff.json, "
        ".html, .txt), all from one scan",
    )
    scan.add_argument(
        "--status",
        choices=STATUS_CHOICES,
        metavar="VERDICT[,VERDICT...]",
        help=f"report only the roles of these verdicts ({', '.join(STATUS_CHOICES)}), in every format; "
        "the exit status still counts every role",
    )
    services_cli.add_services_flag(scan)
    scan.add_argument(
        "--accounts",
        metavar="org|ID[,ID...]",
        help="scan many accounts in parallel through their member role: org (every ACTIVE account of the "
        "organization) or comma-separated account ids; JSON has one entry per account",
    )
    scan.add_argument(
        "--member-role",
        metavar="NAME",
        help="the role assumed in each account with --accounts (default: deputy-guard-member)",
    )
    scan.add_argument(
        "--concurrency",
        type=org_concurrency,
        metavar="N",
        help=f"accounts scanned at once with --accounts (default: {DEFAULT_ACCOUNT_CONCURRENCY})",
    )

    # revert, remediate and exempt: one role, in any account (deputy_guard.actions).
    actions.add_parsers(commands, [aws_flags, logs], _account_id)

    commands.add_parser(
        "setup",
        parents=[aws_flags, logs],
        help="create the bot's DynamoDB table and signing key if they are missing",
        description="Create the DynamoDB table the settings name and the KMS HMAC key that signs the audit records "
        "(DEPUTY_GUARD_SIGNING_KEY, default alias/deputy-guard-signing), if they are missing (idempotent).",
    )

    demo = commands.add_parser(
        "demo",
        help="run the bot end to end against a local AWS stand-in",
        description="Run the bot end to end against a local AWS stand-in: no AWS account, no network.",
    )
    demo.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.ENFORCE.value,
        help="the bot's mode during the demo (default: %(default)s, to show fixes applied)",
    )
    demo.add_argument(
        "--keep-running", action="store_true", help="keep the local servers up after the demo until interrupted"
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON (not with --keep-running)")
    api_client.add_parser(commands, aws_flags)
    services_cli.add_parser(commands)
    completion.add_parser(commands)
    return parser


# --------------------------------------------------------------------------------------------------
# check


def run_check(args: argparse.Namespace) -> int:
    """``deputy-guard check PATH...``: evaluate every trust policy in the inputs offline."""
    from chalicelib.domain.settings import SettingsError, engine_settings, services_setting
    from deputy_guard.services_cli import SERVICES_FLAG

    # The engine settings the bot reads, read the same way; a flag wins over its variable.
    try:
        shared = engine_settings(os.environ)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    try:
        services = services_setting(args.services, SERVICES_FLAG) if args.services else shared["services"]
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    engine = EngineOptions(
        require=Require(args.require) if args.require else shared["require"],
        size_quota=args.size_quota or shared["size_quota"] or EngineOptions().size_quota,
        source_arns=shared["source_arns"],
        services=services,
    )
    options = CheckOptions(
        account=args.account,
        partition=args.partition,
        role_path=args.path,
        engine=engine,
        ignore_unknown=args.ignore_unknown,
        max_file_size=args.max_file_size,
    )
    if not args.paths and sys.stdin.isatty():
        # Waiting in silence for a document nobody will type looks like a hang.
        raise UsageError(
            "check needs a PATH when stdin is a terminal: name a file or directory, or pipe a document in "
            f"(usage: {PROG} check [OPTIONS] PATH...)"
        )
    report = Report()
    args.tally.left = "check changes nothing; run it again to check every input"
    try:
        report = check_paths(args.paths, options, report)
    finally:
        args.tally.scanned = len(report.results)
    for failure in report.failures:
        sys.stderr.write(f"{PROG}: error: {failure_line(failure)}\n")
    # An input may hold lone surrogates ("\ud800" is valid JSON) that no encoding can write: escape them.
    sys.stdout.write(_LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", render(report, args.format)))
    return report.exit_code


# --------------------------------------------------------------------------------------------------
# Subcommands that talk to AWS: imported on use, so that boto3 stays out of check and --help.


def run_scan(args: argparse.Namespace) -> int:
    """``deputy-guard scan``: evaluate (and with --fix, repair) the account's roles."""
    from deputy_guard import commands

    return commands.run_scan(args)


def run_revert(args: argparse.Namespace) -> int:
    """``deputy-guard revert ROLE``: restore the original the bot recorded."""
    return actions.run_revert(args)


def run_remediate(args: argparse.Namespace) -> int:
    """``deputy-guard remediate ROLE``: fix one role now, whatever the mode."""
    return actions.run_remediate(args)


def run_exempt(args: argparse.Namespace) -> int:
    """``deputy-guard exempt ROLE``: tag one role exempt until a date, or remove its exemption."""
    return actions.run_exempt(args)


def run_setup(args: argparse.Namespace) -> int:
    """``deputy-guard setup``: prepare the bot's AWS resources."""
    from deputy_guard import commands

    return commands.run_setup(args)


def run_demo(args: argparse.Namespace) -> int:
    """``deputy-guard demo``: the end-to-end demo against a local AWS stand-in."""
    try:
        # The embedded AWS is moto's server: an optional extra, so a plain install says what to add.
        importlib.import_module("moto.moto_server.werkzeug_app")
    except ImportError:
        raise UsageError(
            "the demo needs its embedded AWS (moto's server), which a plain install leaves out: "
            "pip install 'deputy-guard[demo]'"
        ) from None
    from deputy_guard import commands

    args.tally.counted = False
    args.tally.left = (
        "the demo stopped before its end; its local AWS and Slack stand-ins are stopped and nothing outside "
        "them was changed: run `deputy-guard demo` again"
    )
    return commands.run_demo(args)


def run_api(args: argparse.Namespace) -> int:
    """``deputy-guard api CALL``: the bot's REST API, signed with SigV4."""
    return api_client.run_api(args)


def run_completion(args: argparse.Namespace) -> int:
    """``deputy-guard completion bash|zsh``: print the completion script."""
    sys.stdout.write(completion.render(args.shell, build_parser(), PROG))
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": run_check,
    "scan": run_scan,
    "revert": run_revert,
    "remediate": run_remediate,
    "exempt": run_exempt,
    "setup": run_setup,
    "demo": run_demo,
    "api": run_api,
    "completion": run_completion,
    "services": services_cli.run_services,
}
# The subcommands that use the caller's AWS credentials: an AWS failure is one line and exit 2.
AWS_COMMANDS = frozenset({"scan", "revert", "remediate", "exempt", "setup", "api"})


def _check_combinations(args: argparse.Namespace) -> None:
    """Flags that only mean something together: refused with a clear line rather than silently ignored."""
    if args.command == "scan":
        if not args.accounts:
            pairs = (("--member-role", args.member_role), ("--concurrency", args.concurrency))
            given = [flag for flag, value in pairs if value is not None]
            if given:
                raise UsageError(f"{' and '.join(given)}: only for a scan of many accounts; add --accounts")
        args.formats = names(args.format, FORMAT_ALIASES)
        args.statuses = names(args.status)
        problem = check_request(args.formats, args.output_dir)
        if problem:
            raise UsageError(problem)
    if args.command == "demo" and args.json and args.keep_running:
        raise UsageError(
            "--json and --keep-running cannot be combined: the JSON would be followed by the running demo's "
            "lines; run `deputy-guard demo --json`, or `deputy-guard demo --keep-running` for people"
        )


def main(argv: list[str] | None = None) -> int:
    """Run ``deputy-guard``; returns the exit status (2 with one line on stderr for bad input)."""
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):
            # No command at all: show what there is, as `git` and `aws` do, rather than one bare error.
            sys.stderr.write(parser.format_help())
            return EXIT_BAD_INPUT
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:
            # --help and --version print and exit; give their status back like any other outcome.
            return done.code if isinstance(done.code, int) else EXIT_OK
        _check_combinations(args)
        args.tally = tally = Tally()
        try:
            if args.command in AWS_COMMANDS:
                apply_aws_options(args)
                return guard(HANDLERS[args.command], args)
            status = HANDLERS[args.command](args)
            sys.stdout.flush()  # a closed pipe is found here, inside the handler below
            return status
        except KeyboardInterrupt:
            # Ctrl-C: what was done and what is left, on one line; never a traceback.
            sys.stderr.write(f"\n{tally.line()}\n")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as other tools do, with the shell's status for it.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
    except UsageError as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return EXIT_BAD_INPUT
    except UnicodeEncodeError as exc:
        # Text from an input that cannot be encoded (a lone surrogate) must not end in a traceback.
        sys.stderr.write(f"{PROG}: error: an input holds text that cannot be encoded: {exc.reason}\n")
        return EXIT_BAD_INPUT


def run() -> NoReturn:
    """The console script: ``main``'s status as the process's exit status.

    After Ctrl-C the process ends as soon as its closing line is out: a read still in flight on a worker
    thread (a dry run's listing) must not hold the terminal until its timeout.
    """
    status = main()
    if status == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
