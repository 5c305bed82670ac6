"""The container's dependencies: settings, logger, metrics and the service's Deps, built lazily and cached.

Nothing here runs at import time: settings are read from ``os.environ`` on first use (Chalice sets stage
variables only while a handler runs) and kept for the container's life. Building the Deps imports boto3
(through runtime.wiring), so it happens only when an event needs AWS.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chalicelib.domain.settings import LOG_LEVELS, Settings, SettingsError, load_settings
from chalicelib.runtime.logs import PowertoolsMetrics, make_logger

_lock = threading.Lock()
_state: dict[str, Any] = {}


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
            from chalicelib.runtime.wiring import build_deps  # boto3 and Powertools' persistence: only when needed

            in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
            metrics = PowertoolsMetrics(_metrics_unlocked(), emit_dimensioned=in_lambda)
            _state["deps"] = build_deps(current, logger=_logger_unlocked(), metrics=metrics, verify_table=in_lambda)
        built = _state["deps"]
        if current.exemptions_source is not None:
            _refresh_exemptions_unlocked(current, built)
        return built


def _refresh_exemptions_unlocked(current: Settings, built: Any) -> None:
    """Put the entries of the exemption document (read again when it changed) into the Deps' settings."""
    from chalicelib.runtime.exemptions import LiveExemptions

    live = _state.setdefault("exemptions", LiveExemptions())
    fresh = live.current(current, _logger_unlocked())
    if built.settings is not fresh:
        built.settings = fresh
        _state.pop("accounts", None)  # each account's Deps are copies of these: made again with the new entries


def _logger_unlocked() -> Any:
    if "logger" not in _state:
        level = (os.environ.get("LOG_LEVEL") or "INFO").upper()
        # A bad LOG_LEVEL is reported by the settings (naming the variable); logging itself must still work.
        _state["logger"] = make_logger(
            os.environ.get("POWERTOOLS_SERVICE_NAME") or "deputy-guard", level=level if level in LOG_LEVELS else "INFO"
        )
    return _state["logger"]


def _metrics_unlocked() -> Any:
    if "metrics" not in _state:
        from aws_lambda_powertools import Metrics  # not needed by events answered on the cold path

        _state["metrics"] = Metrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DeputyGuard"),
            service=os.environ.get("POWERTOOLS_SERVICE_NAME", "deputy-guard"),
        )
    return _state["metrics"]


def reset() -> None:
    """Forget cached settings and clients (tests and the demo change the environment)."""
    from chalicelib.adapters import aws  # boto3: loaded only once AWS is needed

    with _lock:
        _state.clear()
    aws.reset_clients()


def install(deps_override: Any) -> None:
    """Use the given dependencies instead of building them (tests, the demo)."""
    with _lock:
        _state["settings"] = deps_override.settings
        _state["deps"] = deps_override
        _state["logger"] = deps_override.logger
        _state.pop("accounts", None)


class Misconfigured(RuntimeError):
    """The deployment's settings are invalid (answered 500, logged)."""


def settings_or_raise() -> Settings:
    try:
        return settings()
    except SettingsError as exc:
        raise Misconfigured(f"deputy-guard is misconfigured: {exc}") from exc


def deps_or_raise() -> Any:
    try:
        return deps()
    except SettingsError as exc:
        raise Misconfigured(f"deputy-guard is misconfigured: {exc}") from exc


def account() -> str:
    """This account's id (sts:GetCallerIdentity, once per container), so a report with no role still names it."""
    from chalicelib.adapters import aws  # boto3: loaded only once AWS is needed

    with _lock:
        if "account" not in _state:
            _state["account"], _arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
        return str(_state["account"])


def accounts() -> Any:
    """The accounts in scope and the Deps for each (runtime.organization), built once per container."""
    current = deps()
    with _lock:
        if "accounts" not in _state:
            from chalicelib.runtime.organization import build_accounts  # boto3: only when needed

            _state["accounts"] = build_accounts(current.settings, current)
        return _state["accounts"]


def accounts_or_raise() -> Any:
    try:
        return accounts()
    except SettingsError as exc:
        raise Misconfigured(f"deputy-guard is misconfigured: {exc}") from exc


def built() -> Any:
    """The Deps if they exist yet, else None: an irrelevant event is answered without building them, and
    without reading the exemption document, which decides nothing for it."""
    with _lock:
        return _state.get("deps")


def has_metrics() -> bool:
    """Whether Metrics were created in this container (only then is there anything to flush)."""
    return "metrics" in _state
