"""One frozen, validated Settings object built from the environment at first use.

Chalice puts stage environment variables into ``os.environ`` only while a handler runs, so nothing
reads the environment at import time: ``load_settings()`` is called lazily and cached by ``app.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry, ServicesError, parse_services
from chalicelib.domain.exemptions import (
    Exemption,
    ExemptionError,
    ExemptionSource,
    parse_inline,
    source_of,
)
from chalicelib.domain.models import DEFAULT_SOURCE_ARN, EngineOptions, Mode, Require
from chalicelib.domain.names import ROLE_ARN
from chalicelib.domain.scope import DEFAULT_MEMBER_ROLE, AccountScope, ScopeError, parse_member_role, parse_scope
from chalicelib.domain.slack_actions import DEFAULT_TOKEN_TTL_DAYS, SLACK_RESPONSE_URL_BASE, response_url_base_problem

DEFAULT_TABLE = "deputy-guard"
DEFAULT_OWNER_TAGS = ("owner", "team", "contact")
DEFAULT_MAX_FIXES = 50
DEFAULT_NOTIFY_WINDOW_HOURS = 24
DEFAULT_SCAN_BUDGET_SECONDS = 25.0
DEFAULT_OWNER = "default"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# API Gateway gives up on a request after 29 s: a scan page must answer before that.
MAX_SCAN_BUDGET_SECONDS = 27.0
# Tag reads a dry-run scan keeps in flight (DEPUTY_GUARD_SCAN_CONCURRENCY): why 16, in chalicelib/service/scan.py.
DEFAULT_SCAN_CONCURRENCY = 16
MAX_SCAN_CONCURRENCY = 32
# An approval button outliving a quarter would act on a role whose owner long forgot the message.
MAX_TOKEN_TTL_DAYS = 90

E = TypeVar("E", Mode, Require)
# A KMS key id, key ARN, alias name or alias ARN.
_SIGNING_KEY = re.compile(
    r"(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?(?:key/)?[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    r"|(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?alias/[A-Za-z0-9/_-]{1,250}"
    r"|mrk-[0-9a-f]{32}"
)
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


@dataclass(frozen=True)
class Settings:
    """Everything deputy-guard can be told through its environment."""

    mode: Mode = Mode.NOTIFY
    require: Require = Require.BOTH
    sns_topic_arn: str | None = None
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_parameter: str | None = None
    # Slack approvals: who may click, how Slack's requests are verified, where answers go.
    slack_approvers: frozenset[str] = frozenset()
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_signing_secret_parameter: str | None = None
    slack_token_ttl_days: int = DEFAULT_TOKEN_TTL_DAYS
    slack_response_url_base: str = SLACK_RESPONSE_URL_BASE
    table: str = DEFAULT_TABLE
    # The KMS HMAC key that signs audit records (key id, key ARN or alias/...); None: records are unsigned and
    # no revert can verify one (docs/security.md).
    signing_key: str | None = None
    owner_tags: tuple[str, ...] = DEFAULT_OWNER_TAGS
    exemptions: tuple[Exemption, ...] = ()
    # The file or SSM parameter DEPUTY_GUARD_EXEMPTIONS names (None: the entries are inline).
    exemptions_source: ExemptionSource | None = None
    max_fixes_per_run: int = DEFAULT_MAX_FIXES
    size_quota: int | None = None  # None: read the account's quota with GetAccountSummary
    source_arns: tuple[str, ...] = (DEFAULT_SOURCE_ARN,)
    # The catalogue entries guarded (DEPUTY_GUARD_SERVICES: states, a list, or all).
    services: tuple[Entry, ...] = DEFAULT_SERVICES
    fix_cloudformation: bool = False
    security_hub: bool = False  # import findings into Security Hub (docs/security-hub.md)
    notify_window_hours: int = DEFAULT_NOTIFY_WINDOW_HOURS
    default_owner: str = DEFAULT_OWNER
    scan_budget_seconds: float = DEFAULT_SCAN_BUDGET_SECONDS
    scan_concurrency: int = DEFAULT_SCAN_CONCURRENCY
    # The bot's own roles (one per function when deployed); empty: discovered with sts:GetCallerIdentity.
    self_role_arns: tuple[str, ...] = ()
    # Organizations: which accounts, the role assumed in them, the sweep's work queue.
    accounts: AccountScope = field(default_factory=AccountScope)
    member_role: str = DEFAULT_MEMBER_ROLE
    work_queue_url: str | None = None
    service_name: str = "deputy-guard"
    metrics_namespace: str = "DeputyGuard"
    log_level: str = "INFO"

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_webhook_url or self.slack_webhook_parameter)

    @property
    def slack_approvals_enabled(self) -> bool:
        """Buttons are sent only when someone may press them, and only on Slack."""
        return self.slack_enabled and bool(self.slack_approvers)

    def engine_options(self, size_quota: int) -> EngineOptions:
        return EngineOptions(
            require=self.require, size_quota=size_quota, source_arns=self.source_arns, services=self.services
        )

    def exemption_for(
        self, role_name: str, role_path: str, today: date, account: str | None = None
    ) -> Exemption | None:
        """The first unexpired central exemption covering the role, if any."""
        for exemption in self.exemptions:
            if exemption.matches(role_name, role_path, today, account):
                return exemption
        return None

    def lapsed_exemption_for(
        self, role_name: str, role_path: str, today: date, account: str | None = None
    ) -> Exemption | None:
        """The first expired central exemption covering the role (reported, so a stale entry is noticed)."""
        for exemption in self.exemptions:
            if exemption.expired(today) and exemption.covers(role_name, role_path, account):
                return exemption
        return None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate the environment into Settings; raise SettingsError naming the variable on a bad value."""
    webhook_url = _opt(env, "DEPUTY_GUARD_SLACK_WEBHOOK_URL")
    if webhook_url is not None and not webhook_url.startswith(("https://", "http://")):
        raise SettingsError("DEPUTY_GUARD_SLACK_WEBHOOK_URL must be an http(s) URL")
    topic = _opt(env, "DEPUTY_GUARD_SNS_TOPIC_ARN")
    if topic is not None and not re.match(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$", topic):
        raise SettingsError(f"DEPUTY_GUARD_SNS_TOPIC_ARN is not an SNS topic ARN: {topic!r}")
    self_roles = tuple(
        part.strip() for part in (env.get("DEPUTY_GUARD_SELF_ROLE_ARN") or "").split(",") if part.strip()
    )
    for arn in self_roles:
        if not ROLE_ARN.match(arn):
            raise SettingsError(f"DEPUTY_GUARD_SELF_ROLE_ARN is not a list of IAM role ARNs: {arn!r}")
    return Settings(
        mode=_enum(env, "DEPUTY_GUARD_MODE", Mode, Mode.NOTIFY),
        sns_topic_arn=topic,
        slack_webhook_url=webhook_url,
        slack_webhook_parameter=_opt(env, "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER"),
        table=_table_name(env),
        signing_key=_signing_key(env),
        owner_tags=_owner_tags(env),
        **_exemptions(env),
        max_fixes_per_run=_int(env, "DEPUTY_GUARD_MAX_FIXES_PER_RUN", DEFAULT_MAX_FIXES, minimum=0),
        **engine_settings(env),
        fix_cloudformation=_bool(env, "DEPUTY_GUARD_FIX_CLOUDFORMATION", default=False),
        security_hub=_bool(env, "DEPUTY_GUARD_SECURITY_HUB", default=False),
        notify_window_hours=_int(env, "DEPUTY_GUARD_NOTIFY_WINDOW_HOURS", DEFAULT_NOTIFY_WINDOW_HOURS, minimum=0),
        default_owner=_opt(env, "DEPUTY_GUARD_DEFAULT_OWNER") or DEFAULT_OWNER,
        scan_budget_seconds=_float(
            env, "DEPUTY_GUARD_SCAN_BUDGET_SECONDS", DEFAULT_SCAN_BUDGET_SECONDS, maximum=MAX_SCAN_BUDGET_SECONDS
        ),
        scan_concurrency=_scan_concurrency(env),
        log_level=_log_level(env),
        self_role_arns=self_roles,
        **_organization(env),
        **_slack_approvals(env),
        service_name=_opt(env, "POWERTOOLS_SERVICE_NAME") or "deputy-guard",
        metrics_namespace=_opt(env, "POWERTOOLS_METRICS_NAMESPACE") or "DeputyGuard",
    )


def engine_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the engine reads (``require``, ``size_quota``, ``source_arns``, ``services``), which `check` shares.

    One reading for the bot and the CLI: `deputy-guard check` takes these from the same variables, its flags
    winning, so an offline check judges and fixes a policy as the deployed bot would.
    """
    return {
        "require": _enum(env, "DEPUTY_GUARD_REQUIRE", Require, Require.BOTH),
        "size_quota": _opt_int(env, "DEPUTY_GUARD_SIZE_QUOTA", minimum=256),
        "source_arns": _source_arns(env),
        "services": services_setting(env.get("DEPUTY_GUARD_SERVICES")),
    }


def services_setting(raw: str | None, name: str = "DEPUTY_GUARD_SERVICES") -> tuple[Entry, ...]:
    """The selected catalogue entries; a SettingsError naming ``name`` (the variable or flag) and the bad value."""
    try:
        return parse_services(raw)
    except ServicesError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def parse_exemptions(raw: str) -> tuple[Exemption, ...]:
    """Parse the entries DEPUTY_GUARD_EXEMPTIONS holds itself (chalicelib.domain.exemptions.parse_inline)."""
    try:
        return parse_inline(raw)
    except ExemptionError as exc:
        raise SettingsError(str(exc)) from None


def _exemptions(env: Mapping[str, str]) -> dict[str, Any]:
    """DEPUTY_GUARD_EXEMPTIONS: the entries themselves, or the file or SSM parameter that holds them.

    A named document is read at the edge (chalicelib.runtime.exemptions); until then there are no entries.
    """
    raw = env.get("DEPUTY_GUARD_EXEMPTIONS", "")
    try:
        source = source_of(raw)
    except ExemptionError as exc:
        raise SettingsError(str(exc)) from None
    if source is not None:
        return {"exemptions": (), "exemptions_source": source}
    return {"exemptions": parse_exemptions(raw), "exemptions_source": None}


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _enum(env: Mapping[str, str], name: str, kind: type[E], default: E) -> E:
    value = _opt(env, name)
    if value is None:
        return default
    try:
        return kind(value.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise SettingsError(f"{name} must be one of {allowed}, not {value!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _opt_int(env, name, minimum=minimum)
    return default if value is None else value


def _opt_int(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    value = _opt(env, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {number}")
    return number


def _scan_concurrency(env: Mapping[str, str]) -> int:
    value = _int(env, "DEPUTY_GUARD_SCAN_CONCURRENCY", DEFAULT_SCAN_CONCURRENCY, minimum=1)
    if value > MAX_SCAN_CONCURRENCY:
        raise SettingsError(f"DEPUTY_GUARD_SCAN_CONCURRENCY must be at most {MAX_SCAN_CONCURRENCY}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, maximum: float) -> float:
    value = _opt(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 1 <= number <= maximum:
        raise SettingsError(f"{name} must be between 1 and {maximum:g} seconds, not {value}")
    return number


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _BOOL_TRUE:
        return True
    if lowered in _BOOL_FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _table_name(env: Mapping[str, str]) -> str:
    name = _opt(env, "DEPUTY_GUARD_TABLE") or DEFAULT_TABLE
    if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name):
        raise SettingsError(f"DEPUTY_GUARD_TABLE is not a valid DynamoDB table name: {name!r}")
    return name


def _signing_key(env: Mapping[str, str]) -> str | None:
    key = _opt(env, "DEPUTY_GUARD_SIGNING_KEY")
    if key is not None and not _SIGNING_KEY.fullmatch(key):
        raise SettingsError(f"DEPUTY_GUARD_SIGNING_KEY is not a KMS key id, key ARN or alias: {key!r}")
    return key


def _owner_tags(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("DEPUTY_GUARD_OWNER_TAGS")
    if raw is None:
        return DEFAULT_OWNER_TAGS
    tags = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not tags:
        raise SettingsError("DEPUTY_GUARD_OWNER_TAGS must list at least one tag key")
    return tags


def _source_arns(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _opt(env, "DEPUTY_GUARD_SOURCE_ARN")
    if raw is None:
        return (DEFAULT_SOURCE_ARN,)
    arns = tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        # The engine's own rule, so a value that passes here can never fail an evaluation later.
        EngineOptions(source_arns=arns)
    except ValueError as exc:
        raise SettingsError(
            f"DEPUTY_GUARD_SOURCE_ARN: {exc} (the partition and account fields must stay {{partition}} and {{account}})"
        ) from None
    return arns


def _slack_approvals(env: Mapping[str, str]) -> dict[str, Any]:
    """DEPUTY_GUARD_SLACK_APPROVERS, _SIGNING_SECRET(_PARAMETER), _TOKEN_TTL_DAYS, _RESPONSE_URL_BASE."""
    raw = env.get("DEPUTY_GUARD_SLACK_APPROVERS") or ""
    approvers = frozenset(part.strip() for part in raw.split(",") if part.strip())
    bad = sorted(a for a in approvers if not re.fullmatch(r"[UW][A-Z0-9]{1,31}", a))
    if bad:
        raise SettingsError(f"DEPUTY_GUARD_SLACK_APPROVERS must list Slack user ids such as U012AB3CD, not {bad[0]!r}")
    secret = _opt(env, "DEPUTY_GUARD_SLACK_SIGNING_SECRET")
    parameter = _opt(env, "DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER")
    if approvers and not (secret or parameter):
        raise SettingsError(
            "DEPUTY_GUARD_SLACK_APPROVERS is set, so DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER (or, locally, "
            "DEPUTY_GUARD_SLACK_SIGNING_SECRET) must be too: clicks cannot be verified without it"
        )
    ttl = _int(env, "DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS", DEFAULT_TOKEN_TTL_DAYS, minimum=1)
    if ttl > MAX_TOKEN_TTL_DAYS:
        raise SettingsError(f"DEPUTY_GUARD_SLACK_TOKEN_TTL_DAYS must be at most {MAX_TOKEN_TTL_DAYS}, not {ttl}")
    base = _opt(env, "DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE") or SLACK_RESPONSE_URL_BASE
    problem = response_url_base_problem(base)
    if problem:
        raise SettingsError(f"DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE {problem}, not {base!r}")
    return {
        "slack_approvers": approvers,
        "slack_signing_secret": secret,
        "slack_signing_secret_parameter": parameter,
        "slack_token_ttl_days": ttl,
        "slack_response_url_base": base,
    }


def _organization(env: Mapping[str, str]) -> dict[str, Any]:
    """DEPUTY_GUARD_ACCOUNTS, DEPUTY_GUARD_MEMBER_ROLE and DEPUTY_GUARD_WORK_QUEUE_URL, checked together."""
    try:
        scope = parse_scope(env.get("DEPUTY_GUARD_ACCOUNTS"))
    except ScopeError as exc:
        raise SettingsError(f"DEPUTY_GUARD_ACCOUNTS: {exc}") from None
    try:
        member_role = parse_member_role(env.get("DEPUTY_GUARD_MEMBER_ROLE"))
    except ScopeError as exc:
        raise SettingsError(f"DEPUTY_GUARD_MEMBER_ROLE: {exc}") from None
    queue = _opt(env, "DEPUTY_GUARD_WORK_QUEUE_URL")
    if queue is not None and not re.fullmatch(r"https?://[^\s/]+/\d{12}/[\w-]{1,80}", queue):
        raise SettingsError(f"DEPUTY_GUARD_WORK_QUEUE_URL is not an SQS queue URL: {queue!r}")
    if scope.multi_account and queue is None:
        raise SettingsError(
            "DEPUTY_GUARD_WORK_QUEUE_URL must be set when DEPUTY_GUARD_ACCOUNTS is org or a list: "
            "the sweep sends one message per account to it"
        )
    return {"accounts": scope, "member_role": member_role, "work_queue_url": queue}


def _log_level(env: Mapping[str, str]) -> str:
    value = (_opt(env, "LOG_LEVEL") or "INFO").upper()
    if value not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {env.get('LOG_LEVEL')!r}")
    return value
