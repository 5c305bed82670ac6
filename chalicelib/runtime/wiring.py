"""Builds the service's dependencies from Settings: real gateways, the notifier, logger and metrics.

Used by app.py (cached per Lambda container) and by the CLI. Heavy imports (Powertools Idempotency,
Parameters) happen on first use, not at cold start.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.iam import IamGateway
from chalicelib.adapters.kms import KmsMacKey
from chalicelib.adapters.securityhub import SecurityHubGateway
from chalicelib.adapters.signing import RecordSigner
from chalicelib.adapters.slack import SlackChannel, make_webhook_url_provider
from chalicelib.adapters.sns import SnsChannel
from chalicelib.adapters.store import (
    IDEMPOTENCY_PK,
    AuditTrail,
    DynamoLedger,
    SweepCursor,
    TableNotTrusted,
    table_origin_problem,
)
from chalicelib.domain.events import self_role_from_arn
from chalicelib.domain.settings import Settings
from chalicelib.runtime.logs import make_logger
from chalicelib.runtime.slack_approvals import button_minter
from chalicelib.service.deps import Deps, FindingsHub, Logger, Metrics
from chalicelib.service.notifier import Notifier

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class CountingMetrics:
    """Metrics for the CLI and tests: counts in memory instead of printing EMF to stdout."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.metadata: dict[str, str] = {}

    def add_metric(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def add_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def add_dimensioned_metric(self, name: str, dimensions: dict[str, str], value: float = 1) -> None:
        key = name + "".join(f"[{k}={v}]" for k, v in sorted(dimensions.items()))
        self.counts[key] = self.counts.get(key, 0) + value


class PowertoolsOnceGuard:
    """At most once per event id, with Powertools Idempotency on the deputy-guard table.

    If the idempotency store itself is unavailable, the work still runs: every write re-reads the role
    first, so a repeated fix is a no-op, and the notification ledger suppresses a repeated message.
    """

    def __init__(self, table: str, logger: Logger, metrics: Metrics) -> None:
        self._table = table
        self._logger = logger
        self._metrics = metrics
        self._persistence: Any = None
        self._config: Any = None
        self.lambda_context: Any = None

    def _setup(self) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._persistence = DynamoDBPersistenceLayer(
            table_name=self._table,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=IDEMPOTENCY_PK,
            boto3_client=aws.make_client("dynamodb"),
        )
        self._config = IdempotencyConfig(
            event_key_jmespath="event_id",
            expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            raise_on_no_idempotency_key=True,
        )

    def run(self, key: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        if self._persistence is None:
            self._setup()
        if self.lambda_context is not None:
            # Lets an in-progress record expire with this invocation, so a retry after a crash is not blocked.
            self._config.register_lambda_context(self.lambda_context)

        ran: list[bool] = []
        done: list[dict[str, Any]] = []

        def handle_iam_event(request: dict[str, Any]) -> dict[str, Any]:
            ran.append(True)
            done.append(work())
            return done[-1]

        guarded = idempotent_function(
            data_keyword_argument="request", persistence_store=self._persistence, config=self._config
        )(handle_iam_event)
        try:
            with warnings.catch_warnings():
                if self.lambda_context is None:
                    # Outside Lambda (CLI, demo, tests) there is no remaining time to register.
                    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
                result: dict[str, Any] = guarded(request={"event_id": key})
        except IdempotencyAlreadyInProgressError:
            self._logger.info("event already being handled elsewhere", extra={"event_id": key})
            return {"status": "skipped", "reason": "in_progress", "event_id": key}
        except IdempotencyPersistenceLayerError as exc:
            self._metrics.add_metric("IdempotencyStoreFailed")
            if done:
                # Only storing the result failed: the event was handled, and handling it again repeats work.
                self._logger.warning(
                    "idempotency store unavailable; the event was handled but its result not stored",
                    extra={"event_id": key, "error": str(exc)},
                )
                return done[-1]
            self._logger.warning(
                "idempotency store unavailable; handling the event unguarded",
                extra={"event_id": key, "error": str(exc)},
            )
            return work()
        if ran:
            return result
        # A stored result means this event id was handled before: say so, nothing was repeated.
        self._logger.info("event already handled; its stored result is returned", extra={"event_id": key})
        return {**result, "replayed": True}


def build_deps(
    settings: Settings,
    *,
    logger: Any = None,
    metrics: Metrics | None = None,
    idempotent: bool = True,
    verify_table: bool = False,
) -> Deps:
    """Real dependencies for the current credentials and endpoint.

    ``verify_table`` (the Lambda and the CLI) first checks that the audit table is the stack's own: raises
    TableNotTrusted, a SettingsError, when it is younger than the signing key.
    """
    log = logger if logger is not None else make_logger(settings.service_name, level=settings.log_level, to_stderr=True)
    counter: Metrics = metrics if metrics is not None else CountingMetrics()
    table = aws.DynamoTable(aws.make_client("dynamodb"), settings.table)
    key = KmsMacKey(aws.make_client("kms"), settings.signing_key) if settings.signing_key is not None else None
    signer = RecordSigner(key) if key is not None else None
    if verify_table and key is not None:
        _check_table_origin(table, key)
    channels: list[Any] = []
    if settings.sns_topic_arn:
        channels.append(SnsChannel(aws.SnsGateway(aws.make_client("sns")), settings.sns_topic_arn))
    if settings.slack_enabled:
        channels.append(SlackChannel(_webhook_provider(settings)))
    notifier = (
        Notifier(
            channels,
            ledger=DynamoLedger(table),
            window_seconds=settings.notify_window_hours * 3600,
            logger=log,
            metrics=counter,
            buttons=button_minter(settings, table, log, counter),
        )
        if channels
        else None
    )
    return Deps(
        settings=settings,
        iam=IamGateway(aws.make_client("iam")),
        audit=AuditTrail(table, signer=signer),
        notifier=notifier,
        logger=log,
        metrics=counter,
        region=aws.current_region(),
        self_roles=_self_role_resolver(settings, log),
        once=PowertoolsOnceGuard(settings.table, log, counter) if idempotent else None,
        cursor=SweepCursor(table),
        security_hub=_security_hub(settings),
    )


def _check_table_origin(table: aws.DynamoTable, key: KmsMacKey) -> None:
    try:
        table_created = table.created_at()
    except aws.NotFound:
        return  # no table yet: nothing to trust, and every write fails until `deputy-guard setup` creates it
    problem = table_origin_problem(table.name, table_created, key.created_at())
    if problem is not None:
        raise TableNotTrusted(problem)


def _security_hub(settings: Settings) -> FindingsHub | None:
    """Security Hub for the bot's own account (its id asked of STS once, when the first findings are sent)."""
    if not settings.security_hub:
        return None
    own: list[str] = []

    def account() -> str:
        if not own:
            own.append(aws.StsGateway(aws.make_client("sts")).get_caller_arn()[0])
        return own[0]

    return FindingsHub(SecurityHubGateway(aws.make_client("securityhub")), account)


def _webhook_provider(settings: Settings) -> Callable[[], str]:
    provider = make_webhook_url_provider(
        parameter=settings.slack_webhook_parameter,
        url=settings.slack_webhook_url,
        get_parameter=aws.get_parameter_value,
        get_secret=aws.get_secret_value,
    )
    assert provider is not None  # only called when Slack is enabled
    return provider


def _self_role_resolver(settings: Settings, logger: Logger) -> Callable[[], frozenset[tuple[str, str]]]:
    """The bot's own (account, role name) pairs, from the setting or sts:GetCallerIdentity, resolved once."""
    cache: list[frozenset[tuple[str, str]]] = []

    def resolve() -> frozenset[tuple[str, str]]:
        if not cache:
            if settings.self_role_arns:
                found = (self_role_from_arn(arn) for arn in settings.self_role_arns)
                cache.append(frozenset(role for role in found if role is not None))
            else:
                try:
                    _account, arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
                except aws.AwsError as exc:
                    # Without it, an echo of our own fix is still a no-op: the role is re-read and compliant.
                    logger.warning("could not resolve deputy-guard's own role", extra={"error": str(exc)})
                    return frozenset()
                role = self_role_from_arn(arn)
                cache.append(frozenset({role}) if role else frozenset())
        return cache[0]

    return resolve
