"""The bodies of app.py's handlers: validate the input, call the service, shape the answer.

Dependencies come from runtime.container, built on first need; an irrelevant event is answered before
any of them exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.events import Skip, to_role_ref
from chalicelib.domain.models import Action
from chalicelib.domain.names import valid_account_id, valid_path_prefix, valid_role_name
from chalicelib.domain.settings import SettingsError, services_setting
from chalicelib.runtime import container
from chalicelib.runtime.container import Misconfigured, logger, metrics
from chalicelib.runtime.logs import PowertoolsMetrics
from chalicelib.service.accounts import AccountOutOfScope, AccountUnavailable, handle_account_ref
from chalicelib.service.enforce import check_role, handle_ref
from chalicelib.service.enforce import remediate as run_remediate
from chalicelib.service.fanout import fan_out, sweep_account
from chalicelib.service.revert import revert as run_revert
from chalicelib.service.scan import BadToken, scan
from chalicelib.service.scan import sweep as run_sweep
from chalicelib.service.skips import report_skip

__all__ = [
    "BadInput",
    "Misconfigured",
    "Unavailable",
    "UnknownRole",
    "logger",
    "unauthenticated_request",
    "valid_path_prefix",
    "valid_role_name",
]

_SCAN_FIELDS = frozenset({"dry_run", "role_names", "path_prefix", "next_token", "account", "services"})
_MAX_ROLE_NAMES = 1000
SWEEP_MARGIN_SECONDS = 60.0


class BadInput(ValueError):
    """The request is malformed (answered 400)."""


class UnknownRole(LookupError):
    """The role does not exist (answered 404)."""


class Unavailable(RuntimeError):
    """AWS failed us (answered 502); the message says which call."""


# --- middleware and handlers ------------------------------------------------------------------------


def unauthenticated_request(request_context: Mapping[str, Any], *, iam_route: bool, in_lambda: bool) -> str | None:
    """Why a REST request must be refused as not authenticated by API Gateway (None: it may run).

    In Lambda every request comes through API Gateway, which adds its ``apiId`` and, on the IAM-authorised routes,
    the caller it verified (``identity.userArn``): the only actor the audit trail records. A direct
    ``lambda:InvokeFunction`` without them is refused. A direct invoke that forges them cannot be told apart
    here: the guardrail policy denies that action on the bot's functions to all but the deployer.
    """
    if not in_lambda:
        return None  # `chalice local`, the demo and tests: no API Gateway in front
    if not request_context.get("apiId"):
        return "the request did not come through API Gateway"
    identity = request_context.get("identity")
    caller = identity.get("userArn") if isinstance(identity, Mapping) else None
    if iam_route and not (isinstance(caller, str) and caller):
        return "the request carries no caller authenticated by API Gateway (IAM)"
    return None


def observe(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Request id and handler name in every log line; metrics flushed after each invocation."""
    log = logger()
    context = getattr(event, "context", None)
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        log.append_keys(request_id=request_id)
    try:
        return get_response(event)
    finally:
        if container.has_metrics() and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            metrics().flush_metrics(raise_on_empty_metrics=False)
        if request_id:
            log.remove_keys(["request_id"])


def on_iam_event(event: Any, context: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        current = container.deps_or_raise()
        current.logger.warning("malformed event dropped", extra={"type": type(event).__name__})
        return {"status": "skipped", "reason": "not_an_object"}
    # The event is read once, into its role reference, and that is handed down. Most IAM events need no AWS
    # call (another service's role, a failed call): they are answered from the settings alone, before any
    # dependency exists, so they never import boto3 nor create clients.
    parsed = to_role_ref(event, services=container.settings_or_raise().services)
    if isinstance(parsed, Skip):
        existing = container.built()
        if existing is None:
            return report_skip(parsed, logger(), PowertoolsMetrics(metrics()))
        return report_skip(parsed, existing.logger, existing.metrics)
    current = container.deps_or_raise()
    once = getattr(current, "once", None)
    if once is not None and hasattr(once, "lambda_context"):
        once.lambda_context = context if hasattr(context, "get_remaining_time_in_millis") else None
    if current.settings.accounts.multi_account:
        return handle_account_ref(parsed, container.accounts_or_raise())
    return handle_ref(parsed, current)


def sweep(context: Any) -> dict[str, Any]:
    current = container.deps_or_raise()
    if current.settings.accounts.multi_account:
        # One message per account; scan_account sweeps each.
        from chalicelib.runtime.organization import work_queue

        return fan_out(container.accounts_or_raise(), work_queue(), current.settings.work_queue_url)
    return run_sweep(current, budget_seconds=_budget(context))


def scan_account(bodies: list[str], context: Any) -> dict[str, Any]:
    """One work message (batch size 1) from the sweep's queue: sweep the account it names."""
    from chalicelib.runtime.organization import work_queue

    current = container.deps_or_raise()
    directory = container.accounts_or_raise()
    results = [
        sweep_account(body, directory, work_queue(), current.settings.work_queue_url, budget_seconds=_budget(context))
        for body in bodies
    ]
    return {"results": results}


def _budget(context: Any) -> float | None:
    """The time a sweep may take: what Lambda leaves this invocation, less a margin to save the cursor."""
    if hasattr(context, "get_remaining_time_in_millis"):
        return float(max(5.0, context.get_remaining_time_in_millis() / 1000 - SWEEP_MARGIN_SECONDS))
    return None


def post_scans(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    _only(body, _SCAN_FIELDS)
    dry_run = _bool_field(body, "dry_run", default=True)
    names = body.get("role_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadInput("role_names must be a list of role names")
        if not 1 <= len(names) <= _MAX_ROLE_NAMES:
            raise BadInput(f"role_names must hold 1 to {_MAX_ROLE_NAMES} names")
        bad = [n for n in names if not valid_role_name(n)]
        if bad:
            raise BadInput(f"invalid role name: {bad[0][:80]!r}")
        if "path_prefix" in body:
            # A name is exact and unique in the account: a path filter on top could only hide a named role.
            raise BadInput("role_names and path_prefix cannot be combined: role_names name roles exactly")
    prefix = body.get("path_prefix", "/")
    if not isinstance(prefix, str) or not valid_path_prefix(prefix):
        raise BadInput("path_prefix must be an IAM path such as / or /teams/data/")
    token = body.get("next_token")
    if token is not None and (not isinstance(token, str) or not token or len(token) > 4096):
        raise BadInput("next_token must be the string a previous report returned")
    account = body.get("account")
    if account is not None and not isinstance(account, str):
        raise BadInput("account must be a 12-digit account id")
    current = _with_services(_deps_for(account), body.get("services"))
    try:
        report = scan(
            current,
            dry_run=dry_run,
            role_names=names,
            path_prefix=prefix,
            next_token=token,
            budget_seconds=current.settings.scan_budget_seconds,
            trigger="scan",
            account=account or container.account(),
        )
    except BadToken as exc:
        raise BadInput(str(exc)) from None
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    return 200, report.to_dict()


def get_role(role_name: str, account: str | None = None) -> tuple[int, dict[str, Any]]:
    try:
        result = check_role(role_name, _deps_for(account))
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result is None:
        raise UnknownRole(f"role {role_name!r} not found")
    return 200, {**result.to_report(), "fixed_policy": result.after, "policy": result.before}


def remediate(
    role_name: str, body: Mapping[str, Any], caller: str | None, account: str | None = None
) -> tuple[int, dict[str, Any]]:
    _only(body, {"dry_run"})
    dry_run = _bool_field(body, "dry_run", default=False)
    try:
        result = run_remediate(role_name, _deps_for(account), dry_run=dry_run, actor=caller)
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result is None:
        raise UnknownRole(f"role {role_name!r} not found")
    # A forced run notifies only for an advise-level service, whose fix deputy-guard never writes: refused.
    status = {Action.EXEMPT: 409, Action.REVIEW: 409, Action.NOTIFIED: 409, Action.FAILED: 502}.get(result.action, 200)
    return status, {**result.to_report(), "change_id": result.change_id}


def revert(
    role_name: str, body: Mapping[str, Any], caller: str | None, account: str | None = None
) -> tuple[int, dict[str, Any]]:
    _only(body, {"force"})
    force = _bool_field(body, "force", default=False)
    try:
        result = run_revert(role_name, _deps_for(account), force=force, actor=caller)
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result.status == "not_found":
        raise UnknownRole(result.message)
    # A repeated revert finds its work done: 200, so a client retrying after a lost answer sees success.
    status = {"reverted": 200, "already_reverted": 200, "refused": 409, "nothing_to_revert": 409, "failed": 502}[
        result.status
    ]
    return status, result.to_dict()


def _deps_for(account: str | None) -> Any:
    """The Deps for a request: the bot's own account by default, else ``account`` if it is in scope (400 if not)."""
    current = container.deps_or_raise()
    if account is None:
        return current
    if not valid_account_id(account):
        raise BadInput("account must be a 12-digit account id")
    directory = container.accounts_or_raise()
    try:
        directory.check(account)
        return directory.deps_for(account)
    except AccountOutOfScope as exc:
        raise BadInput(str(exc)) from None
    except AccountUnavailable as exc:
        raise Unavailable(f"cannot act in account {account}: {exc.cause}") from exc
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc


def _with_services(deps: Any, services: Any) -> Any:
    """``deps`` guarding the services a request names (a list, or a comma-separated string), else as configured."""
    if services is None:
        return deps
    if isinstance(services, list) and services and all(isinstance(name, str) for name in services):
        services = ",".join(services)
    if not isinstance(services, str) or not services.strip():
        raise BadInput('services must be "all", or a list of service names such as ["states", "scheduler"]')
    try:
        chosen = services_setting(services, "services")
    except SettingsError as exc:
        raise BadInput(str(exc)) from None
    return replace(deps, settings=replace(deps.settings, services=chosen))


def _bool_field(body: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadInput(f"{name} must be true or false")
    return value


def _only(body: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(sorted(unknown))}")
