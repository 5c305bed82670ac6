"""What app.py's handlers do: lazy, cached dependencies, REST input validation, handler bodies.

Nothing here runs at import time: settings are read from ``os.environ`` on first use (Chalice sets
stage variables only while a handler runs) and kept for the container's life.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.domain.settings import LOG_LEVELS, Settings, SettingsError, load_settings

_lock = threading.Lock()
_state: dict[str, Any] = {}
_SCAN_FIELDS = frozenset({"dry_run", "role_names", "path_prefix", "next_token"})
_MAX_ROLE_NAMES = 1000
SWEEP_MARGIN_SECONDS = 60.0


class BadInput(ValueError):
    """The request is malformed (answered 400)."""


class UnknownRole(LookupError):
    """The role does not exist (answered 404)."""


class Unavailable(RuntimeError):
    """AWS failed us (answered 502); the message says which call."""


class Misconfigured(RuntimeError):
    """The deployment's settings are invalid (answered 500, logged)."""


def settings() -> Settings:
    with _lock:
        return _settings_unlocked()


def _settings_unlocked() -> Settings:
    if "settings" not in _state:
        _state["settings"] = load_settings(os.environ)
    return _state["settings"]  # type: ignore[no-any-return]


def logger() -> Any:
    with _lock:
        return _logger_unlocked()


def metrics() -> Any:
    with _lock:
        return _metrics_unlocked()


def deps() -> Any:
    """The service's dependencies, built once per container."""
    with _lock:
        current = _settings_unlocked()
        if "deps" not in _state:
            from chalicelib.runtime.logs import PowertoolsMetrics
            from chalicelib.runtime.wiring import build_deps

            _state["deps"] = build_deps(
                current, logger=_logger_unlocked(), metrics=PowertoolsMetrics(_metrics_unlocked())
            )
        return _state["deps"]


def _logger_unlocked() -> Any:
    if "logger" not in _state:
        from chalicelib.runtime.logs import make_logger

        level = (os.environ.get("LOG_LEVEL") or "INFO").upper()
        # A bad LOG_LEVEL is reported by the settings (naming the variable); logging itself must still work.
        _state["logger"] = make_logger(
            os.environ.get("POWERTOOLS_SERVICE_NAME") or "deputy-guard", level=level if level in LOG_LEVELS else "INFO"
        )
    return _state["logger"]


def _metrics_unlocked() -> Any:
    if "metrics" not in _state:
        from aws_lambda_powertools import Metrics

        _state["metrics"] = Metrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DeputyGuard"),
            service=os.environ.get("POWERTOOLS_SERVICE_NAME", "deputy-guard"),
        )
    return _state["metrics"]


def reset() -> None:
    """Forget cached settings and clients (tests and the demo change the environment)."""
    from chalicelib.adapters import aws

    with _lock:
        _state.clear()
    aws.reset_clients()


def install(deps_override: Any) -> None:
    """Use the given dependencies instead of building them (tests, the demo)."""
    with _lock:
        _state["settings"] = deps_override.settings
        _state["deps"] = deps_override
        _state["logger"] = deps_override.logger


# --- middleware and handlers ------------------------------------------------------------------------


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
        if "metrics" in _state and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            _state["metrics"].flush_metrics(raise_on_empty_metrics=False)
        if request_id:
            log.remove_keys(["request_id"])


def on_iam_event(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib.domain.events import Skip, to_role_ref

    if "deps" not in _state and isinstance(event, Mapping):
        # Most IAM events need no AWS call (another service's role, a failed call): answer those before the
        # first dependencies are built, so they never import boto3 nor create clients. Same test, log line
        # and metric as service.handle_event.
        early = to_role_ref(event)
        if isinstance(early, Skip):
            from chalicelib.runtime.logs import PowertoolsMetrics, report_skip

            _settings_or_raise()
            return report_skip(early, logger(), PowertoolsMetrics(metrics()))

    from chalicelib.service.enforce import handle_event

    current = _deps_or_raise()
    once = getattr(current, "once", None)
    if once is not None and hasattr(once, "lambda_context"):
        once.lambda_context = context if hasattr(context, "get_remaining_time_in_millis") else None
    if not isinstance(event, Mapping):
        current.logger.warning("malformed event dropped", extra={"type": type(event).__name__})
        return {"status": "skipped", "reason": "not_an_object"}
    return handle_event(event, current)


def sweep(context: Any) -> dict[str, Any]:
    from chalicelib.service.scan import sweep as run_sweep

    current = _deps_or_raise()
    remaining = None
    if hasattr(context, "get_remaining_time_in_millis"):
        remaining = max(5.0, context.get_remaining_time_in_millis() / 1000 - SWEEP_MARGIN_SECONDS)
    return run_sweep(current, budget_seconds=remaining)


def post_scans(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    from chalicelib.adapters.aws import AwsError
    from chalicelib.service.scan import BadToken, scan

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
    prefix = body.get("path_prefix", "/")
    if not isinstance(prefix, str) or not valid_path_prefix(prefix):
        raise BadInput("path_prefix must be an IAM path such as / or /teams/data/")
    token = body.get("next_token")
    if token is not None and (not isinstance(token, str) or not token or len(token) > 4096):
        raise BadInput("next_token must be the string a previous report returned")
    current = _deps_or_raise()
    try:
        report = scan(
            current,
            dry_run=dry_run,
            role_names=names,
            path_prefix=prefix,
            next_token=token,
            budget_seconds=current.settings.scan_budget_seconds,
            trigger="scan",
            account=_account(),
        )
    except BadToken as exc:
        raise BadInput(str(exc)) from None
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    return 200, report.to_dict()


def get_role(role_name: str) -> tuple[int, dict[str, Any]]:
    from chalicelib.adapters.aws import AwsError
    from chalicelib.service.enforce import check_role

    try:
        result = check_role(role_name, _deps_or_raise())
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result is None:
        raise UnknownRole(f"role {role_name!r} not found")
    return 200, {**result.to_report(), "fixed_policy": result.after, "policy": result.before}


def remediate(role_name: str, body: Mapping[str, Any], caller: str | None) -> tuple[int, dict[str, Any]]:
    from chalicelib.adapters.aws import AwsError
    from chalicelib.domain.models import Action
    from chalicelib.service.enforce import remediate as run_remediate

    _only(body, {"dry_run"})
    dry_run = _bool_field(body, "dry_run", default=False)
    try:
        result = run_remediate(role_name, _deps_or_raise(), dry_run=dry_run, actor=caller)
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result is None:
        raise UnknownRole(f"role {role_name!r} not found")
    status = {Action.EXEMPT: 409, Action.REVIEW: 409, Action.FAILED: 502}.get(result.action, 200)
    return status, {**result.to_report(), "change_id": result.change_id}


def revert(role_name: str, body: Mapping[str, Any], caller: str | None) -> tuple[int, dict[str, Any]]:
    from chalicelib.adapters.aws import AwsError
    from chalicelib.service.revert import revert as run_revert

    _only(body, {"force"})
    force = _bool_field(body, "force", default=False)
    try:
        result = run_revert(role_name, _deps_or_raise(), force=force, actor=caller)
    except AwsError as exc:
        raise Unavailable(str(exc)) from exc
    if result.status == "not_found":
        raise UnknownRole(result.message)
    status = {"reverted": 200, "refused": 409, "nothing_to_revert": 409, "failed": 502}[result.status]
    return status, result.to_dict()


def valid_role_name(name: str) -> bool:
    return re.fullmatch(r"[\w+=,.@-]{1,64}", name, flags=re.ASCII) is not None


def valid_path_prefix(prefix: str) -> bool:
    return len(prefix) <= 512 and re.fullmatch(r"/([\x21-\x7e]*/)?", prefix) is not None


def _bool_field(body: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadInput(f"{name} must be true or false")
    return value


def _only(body: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(sorted(unknown))}")


def _account() -> str:
    """This account's id (sts:GetCallerIdentity, once per container), so a report with no role still names it."""
    from chalicelib.adapters import aws

    with _lock:
        if "account" not in _state:
            _state["account"], _arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        return str(_state["account"])


def _settings_or_raise() -> Settings:
    try:
        return settings()
    except SettingsError as exc:
        raise Misconfigured(f"deputy-guard is misconfigured: {exc}") from exc


def _deps_or_raise() -> Any:
    try:
        return deps()
    except SettingsError as exc:
        raise Misconfigured(f"deputy-guard is misconfigured: {exc}") from exc
