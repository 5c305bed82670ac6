"""`deputy-guard revert|remediate|exempt ROLE [--account ID]`: act on one role, in any account of the organization.

Each command runs the service code the bot runs (``service.revert``, the REST route's ``remediate``, the
Slack button's ``exempt_role``) with the caller's credentials. With ``--account`` the IAM calls go through
the member role in that account, assumed with the caller's credentials, while the audit trail stays in the
caller's own (central) account's table: the table the bot writes every account's records to. Without it,
the caller's own account is acted on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from chalicelib.domain.models import Action
from chalicelib.domain.scope import DEFAULT_MEMBER_ROLE, AccountScope, ScopeError, ScopeKind, parse_member_role
from chalicelib.domain.slack_actions import EXEMPT_DAYS
from deputy_guard.aws_cli import describe_aws_failure, fail
from deputy_guard.exits import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

MAX_EXEMPT_DAYS = 3650
# What `remediate` answers with, per action: as `deputy-guard api remediate` (200, 409, 502).
_REMEDIATE_EXIT = {Action.EXEMPT: EXIT_FINDINGS, Action.REVIEW: EXIT_FINDINGS, Action.FAILED: EXIT_ERROR}


def add_parsers(commands: Any, parents: list[argparse.ArgumentParser], account_type: Any) -> None:
    """Register ``revert``, ``remediate`` and ``exempt`` on the CLI's subcommands, each with ``parents``' flags."""
    revert = commands.add_parser(
        "revert",
        parents=parents,
        help="restore the trust policy the bot replaced",
        description="Restore the original trust policy the bot recorded before fixing ROLE, and exempt the role.",
        epilog="exit status: 0 restored (or already), 1 refused, 2 unknown role, nothing recorded, or an error",
    )
    revert.add_argument("role", metavar="ROLE", help="role name")
    revert.add_argument("--force", action="store_true", help="revert even if the policy changed since the bot wrote it")
    _account_options(revert, account_type)

    remediate = commands.add_parser(
        "remediate",
        parents=parents,
        help="fix one role now, whatever the mode",
        description="Fix ROLE now, whatever DEPUTY_GUARD_MODE says (as POST /roles/ROLE/remediate): the fix is "
        "recorded in the audit table first. Exempt roles and roles that need review are left alone.",
        epilog="exit status: 0 fixed (or nothing to fix), 1 refused (exempt, needs review), 2 unknown role or an error",
    )
    remediate.add_argument("role", metavar="ROLE", help="role name")
    remediate.add_argument("--dry-run", action="store_true", help="show the fix without applying it")
    remediate.add_argument(
        "--format", choices=("text", "json"), default="text", help="text for people, json as the REST route answers"
    )
    _account_options(remediate, account_type)

    exempt = commands.add_parser(
        "exempt",
        parents=parents,
        help="exempt one role from deputy-guard for a number of days (or remove its exemption)",
        description="Tag ROLE deputy-guard:mode=exempt until a date, as Slack's `Exempt 30 days` button does, "
        "recorded in the audit table first. --remove takes the exemption tags off again.",
        epilog="exit status: 0 done (or nothing to remove), 2 unknown role or an error",
    )
    exempt.add_argument("role", metavar="ROLE", help="role name")
    exempt.add_argument(
        "--days", type=_days, default=EXEMPT_DAYS, metavar="N", help="days the exemption lasts (default: %(default)s)"
    )
    exempt.add_argument("--reason", metavar="TEXT", help="why (required unless --remove); kept in the audit trail")
    exempt.add_argument("--remove", action="store_true", help="remove the role's exemption tags instead")
    _account_options(exempt, account_type)


def _account_options(parser: argparse.ArgumentParser, account_type: Any) -> None:
    parser.add_argument(
        "--account",
        type=account_type,
        metavar="ID",
        help="act in this account through its member role, assumed with your credentials; the audit trail "
        "stays in your own (central) account's table (default: your own account)",
    )
    parser.add_argument(
        "--member-role",
        metavar="NAME",
        help=f"the role assumed with --account (default: {DEFAULT_MEMBER_ROLE})",
    )


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= value <= MAX_EXEMPT_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_EXEMPT_DAYS}, not {value}")
    return value


# Records nobody reads: the command reports a refused member role itself, on one line.
_QUIET = logging.getLogger("deputy_guard.actions.member_role")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _Stop(Exception):
    """A one-line error for the command (exit 2)."""


@dataclass(frozen=True)
class Target:
    """Where a command acts: the Deps for the role's account, the caller (the actor) and their account."""

    deps: Any
    actor: str
    caller_account: str
    account: str
    iam_client: Any  # the IAM client acting in ``account`` (the CLI's own calls: removing an exemption)


def target(args: argparse.Namespace, *, writes: bool) -> Target:
    """The Deps acting in ``--account`` (or the caller's own account); the audit table checked when ``writes``."""
    from chalicelib.adapters import aws
    from chalicelib.domain.settings import SettingsError
    from chalicelib.runtime.organization import build_accounts
    from chalicelib.service.accounts import AccountUnavailable
    from deputy_guard.commands import Unready, _cli_deps, _cli_settings, check_audit_table

    if args.member_role and not args.account:
        raise _Stop("--member-role is used with --account only")
    try:
        member_role = parse_member_role(args.member_role)
    except ScopeError as exc:
        raise _Stop(f"--member-role: {exc}") from None
    try:
        settings = _cli_settings()
        central = _cli_deps(settings, verbose=args.verbose)
        caller_account, actor = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        account = args.account or caller_account
        if writes:
            check_audit_table(settings, acting_in=account if account != caller_account else None)
        if account == caller_account:
            return Target(central, actor, caller_account, account, aws.make_client("iam"))
        # A refused member role is this command's one line of error: the service's log record of it stays quiet.
        quiet = replace(central, logger=_QUIET)
        directory = build_accounts(
            settings,
            quiet,
            scope=AccountScope(ScopeKind.LIST, (account,)),
            member_role=member_role,
            identity=(caller_account, actor.split(":")[1]),  # the caller's, asked of STS above
        )
        try:
            member = replace(directory.deps_for(account), logger=central.logger)
            iam_client = aws.member_client(directory.role_arn(account), "iam")
            return Target(member, actor, caller_account, account, iam_client)
        except AccountUnavailable as exc:
            raise _Stop(
                f"cannot act in account {account}: assuming {directory.role_arn(account)} was refused "
                f"({exc.cause.code}): {exc.cause.message}"
            ) from None
    except (SettingsError, Unready) as exc:
        raise _Stop(str(exc)) from None
    except aws.AwsError as exc:
        raise _Stop(describe_aws_failure(exc) or str(exc)) from None


def _guarded(run: Any, args: argparse.Namespace) -> int:
    from chalicelib.adapters.errors import AwsError

    try:
        return int(run(args))
    except _Stop as exc:
        return fail(str(exc))
    except AwsError as exc:
        return fail(describe_aws_failure(exc) or str(exc))


def run_revert(args: argparse.Namespace) -> int:
    """`deputy-guard revert ROLE [--force] [--account ID]`: 0 restored (or already), 1 refused, 2 otherwise."""
    return _guarded(_revert, args)


def _revert(args: argparse.Namespace) -> int:
    from chalicelib.domain.policy import render_diff
    from chalicelib.service.enforce import current_document
    from chalicelib.service.revert import revert

    where = target(args, writes=True)
    # A forced revert discards a change nobody reviewed with it: show what it replaced, once written.
    replaced = where.deps.iam.get_role(args.role) if args.force else None
    result = revert(args.role, where.deps, force=args.force, actor=where.actor, caller_credentials=True)
    if result.status in ("reverted", "already_reverted"):
        print(_prefix(where) + result.message)
        if result.status == "reverted" and replaced is not None:
            print(render_diff(current_document(replaced), result.restored, "replaced", "restored").rstrip())
        return EXIT_OK
    if result.status == "refused":
        print(f"deputy-guard: refused: {result.message}", file=sys.stderr)
        return EXIT_FINDINGS
    # not_found (the same status as `scan --role` for an unknown role), nothing_to_revert, failed
    return fail(_prefix(where) + result.message)


def run_remediate(args: argparse.Namespace) -> int:
    """`deputy-guard remediate ROLE [--dry-run] [--account ID]`: 0 fixed or clean, 1 refused, 2 otherwise."""
    return _guarded(_remediate, args)


def _remediate(args: argparse.Namespace) -> int:
    from chalicelib.service.enforce import remediate
    from deputy_guard.commands import note_unsigned_fixes

    where = target(args, writes=not args.dry_run)
    if not args.dry_run:
        note_unsigned_fixes(where.deps.settings)
    result = remediate(args.role, where.deps, dry_run=args.dry_run, actor=where.actor)
    if result is None:
        return fail(f"role {args.role!r} does not exist{_in(where)}")
    if args.format == "json":
        print(json.dumps({**result.to_report(), "change_id": result.change_id, "account": where.account}, indent=2))
    else:
        print(f"{result.role_name}{_in(where)}: {result.verdict.value} -> {result.action.value}: {result.reason}")
        if result.diff:
            print(result.diff.rstrip())
        if result.change_id:
            print(f"change {result.change_id}; undo with: deputy-guard revert {result.role_name}{_flag(where)}")
    code = _REMEDIATE_EXIT.get(result.action, EXIT_OK)
    if code == EXIT_FINDINGS:
        print(f"deputy-guard: refused: {result.reason}", file=sys.stderr)
    return code


def run_exempt(args: argparse.Namespace) -> int:
    """`deputy-guard exempt ROLE --days N --reason TEXT [--remove] [--account ID]`: 0 done, 2 otherwise."""
    if not args.remove and not (args.reason or "").strip():
        return fail("--reason is required: say why the role is exempt (it is kept in the audit trail)")
    if args.remove and args.reason:
        return fail("--reason goes with an exemption, not with --remove")
    return _guarded(_exempt, args)


def _exempt(args: argparse.Namespace) -> int:
    from chalicelib.service.enforce import evaluate_role
    from chalicelib.service.exempt import exempt_role

    where = target(args, writes=True)
    deps = where.deps
    role = deps.iam.get_role(args.role)
    if role is None:
        return fail(f"role {args.role!r} does not exist{_in(where)}")
    if args.remove:
        return _remove_exemption(where, role)
    today = deps.clock().date()
    until = today + timedelta(days=args.days)
    reason = f"exempt until {until.isoformat()} by {where.actor} on {today.isoformat()}: {args.reason.strip()}"
    result = exempt_role(
        role,
        deps,
        actor=where.actor,
        until=until,
        reason=reason,
        trigger="cli",
        verdict=evaluate_role(role, deps).verdict,
    )
    if result.status == "failed":
        return fail(_prefix(where) + result.message)
    print(_prefix(where) + result.message)
    return EXIT_OK


def _remove_exemption(where: Target, role: Any) -> int:
    """Untag an exempt role, recorded first as every change. The bot never untags: this is the CLI's alone."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.adapters import aws
    from chalicelib.adapters.store import ChangeKind, ChangeStatus
    from chalicelib.domain.plan import MODE_TAG, tag_value
    from chalicelib.service.enforce import current_document, save_outcome
    from chalicelib.service.exempt import EXEMPTION_TAGS, record_tag_change

    deps = where.deps
    if (tag_value(role.tags, MODE_TAG) or "").strip().lower() != "exempt":
        print(f"{_prefix(where)}{role.name} is not tagged {MODE_TAG}=exempt; nothing to remove")
        return EXIT_OK
    reason = f"exemption removed by {where.actor}"
    current = current_document(role) or {}
    record = record_tag_change(
        role, deps, current, ChangeKind.UNEXEMPT, actor=where.actor, trigger="cli", reason=reason
    )
    keys = [key for key in role.tags if key.lower() in {tag.lower() for tag in EXEMPTION_TAGS}]
    try:
        where.iam_client.untag_role(RoleName=role.name, TagKeys=keys)
    except (ClientError, BotoCoreError) as exc:
        error = aws.translate("UntagRole", exc)
        save_outcome(deps, record, ChangeStatus.FAILED, str(error))
        # The member role may tag a role exempt, never untag it: that takes the account's own credentials, and
        # `exempt --remove` run with those would look for the audit table in that account, so name the IAM call.
        hint = (
            "; the member role may not untag: with that account's own credentials run "
            f"`aws iam untag-role --role-name {role.name} --tag-keys {' '.join(keys)}`"
            if _in(where)
            else ""
        )
        return fail(f"{_prefix(where)}IAM refused to untag {role.name} ({error.code}): {error.message}{hint}")
    save_outcome(deps, record, ChangeStatus.APPLIED, None)
    print(f"{_prefix(where)}{role.name} is no longer exempt; change {record.change_id}")
    central = deps.settings.exemption_for(role.name, role.path, deps.clock().date(), role.account_id)
    if central is not None:
        print(f"deputy-guard: note: {role.name} stays exempt by the {central.describe()}", file=sys.stderr)
    return EXIT_OK


def _in(where: Target) -> str:
    return f" in account {where.account}" if where.account != where.caller_account else ""


def _prefix(where: Target) -> str:
    return f"account {where.account}: " if where.account != where.caller_account else ""


def _flag(where: Target) -> str:
    return f" --account {where.account}" if where.account != where.caller_account else ""
