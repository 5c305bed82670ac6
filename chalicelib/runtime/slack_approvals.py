"""``POST /slack/actions``: Slack's signature first, then the click, then the answer to its response_url.

Slack cannot sign with SigV4, so this route has no IAM authoriser: a request is worth reading only once its
v0 signature checks out. Until then nothing is parsed, no table is read and no AWS client is built (unless
the signing secret itself lives in SSM or Secrets Manager, read through Powertools' cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.store import utc_now
from chalicelib.adapters.tokens import DynamoTokenStore, TokenTable
from chalicelib.domain.settings import Settings
from chalicelib.domain.slack_actions import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ClickError,
    parse_click,
    signature_problem,
)
from chalicelib.runtime import container
from chalicelib.runtime.logs import PowertoolsMetrics
from chalicelib.service.approvals import Approvals, ButtonMinter, handle_click
from chalicelib.service.deps import Deps, Logger, Metrics

if TYPE_CHECKING:
    from chalicelib.adapters.slack_interactivity import ResponsePoster

UNAUTHORIZED = {"Code": "Unauthorized", "Message": "the request does not carry a valid Slack signature"}
_lock = threading.Lock()
_state: dict[str, Any] = {}


def button_minter(settings: Settings, table: TokenTable, logger: Logger, metrics: Metrics) -> ButtonMinter | None:
    """The notifier's source of approval buttons; None when nobody may press them (no buttons are sent)."""
    if not settings.slack_approvals_enabled:
        return None
    return ButtonMinter(
        DynamoTokenStore(table),
        ttl_seconds=settings.slack_token_ttl_days * 24 * 3600,
        clock=utc_now,
        logger=logger,
        metrics=metrics,
    )


def build_approvals(deps: Deps) -> Approvals:
    """What a click needs, from the container's Deps: a click's news goes to SNS; Slack hears through the answer."""
    from chalicelib.adapters import aws  # boto3: only for a signed click
    from chalicelib.adapters.sns import SnsChannel
    from chalicelib.adapters.store import DynamoLedger
    from chalicelib.service.notifier import Notifier

    settings = deps.settings
    table = aws.DynamoTable(aws.make_client("dynamodb"), settings.table)
    tokens = DynamoTokenStore(table)
    announce = (
        Notifier(
            [SnsChannel(aws.SnsGateway(aws.make_client("sns")), settings.sns_topic_arn)],
            ledger=DynamoLedger(table),
            window_seconds=settings.notify_window_hours * 3600,
            logger=deps.logger,
            metrics=deps.metrics,
        )
        if settings.sns_topic_arn
        else None
    )
    minter = ButtonMinter(
        tokens,
        ttl_seconds=settings.slack_token_ttl_days * 24 * 3600,
        clock=deps.clock,
        logger=deps.logger,
        metrics=deps.metrics,
    )
    return Approvals(
        deps=replace(deps, notifier=announce),
        tokens=tokens,
        minter=minter,
        approvers=settings.slack_approvers,
        deps_for_account=_member_deps(announce) if settings.accounts.multi_account else None,
    )


def _member_deps(announce: Any) -> Callable[[str], Deps | None]:
    """The Deps acting in an account of the organization; None when out of scope or unreachable."""
    from chalicelib.adapters.errors import AwsError
    from chalicelib.service.accounts import AccountOutOfScope, AccountUnavailable

    def deps_for(account: str) -> Deps | None:
        directory = container.accounts_or_raise()
        try:
            directory.check(account)
            member: Deps = directory.deps_for(account)
        except (AccountOutOfScope, AccountUnavailable, AwsError) as exc:
            container.logger().warning(
                "slack action: account unavailable", extra={"account": account, "error": str(exc)}
            )
            return None
        return replace(member, notifier=announce)

    return deps_for


def on_slack_action(headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """Verify, parse, act, answer. 401 for a bad signature, 400 for a signed body that is not a click."""
    settings = container.settings_or_raise()
    folded = {key.lower(): value for key, value in headers.items()}
    try:
        secret = _signing_secret(settings)
    except Exception as exc:  # noqa: BLE001 - any provider fault; its text may hold the secret, so only its type
        container.logger().error(
            "slack request refused: signing secret unreadable", extra={"error": type(exc).__name__}
        )
        return 503, {"Code": "ServiceUnavailable", "Message": "cannot verify Slack requests right now"}
    if secret is None:
        container.logger().warning("slack request refused: no signing secret is configured")
        return 401, UNAUTHORIZED
    problem = signature_problem(
        secret, folded.get(TIMESTAMP_HEADER), folded.get(SIGNATURE_HEADER), body, now=time.time()
    )
    if problem is not None:
        container.logger().warning("slack request refused: bad signature", extra={"problem": problem.value})
        PowertoolsMetrics(container.metrics()).add_metric("SlackSignatureRejected")
        return 401, UNAUTHORIZED
    try:
        click = parse_click(body, response_url_base=settings.slack_response_url_base)
    except ClickError as exc:
        container.logger().warning(
            "signed slack request is not a click deputy-guard handles", extra={"error": str(exc)}
        )
        return 400, {"Code": "BadRequest", "Message": str(exc)}
    deps = container.deps_or_raise()
    outcome = handle_click(click, _approvals(deps))
    failure = _poster(settings).post(click.response_url, outcome.answer)
    if failure is not None:
        deps.metrics.add_metric("SlackResponseFailed")
        deps.logger.warning("could not update the Slack message", extra={"error": failure})
    return 200, outcome.answer


def _signing_secret(settings: Settings) -> str | None:
    provider = _cached("secret", settings, lambda: _secret_provider(settings))
    return provider() if provider is not None else None


def _secret_provider(settings: Settings) -> Callable[[], str] | None:
    from chalicelib.adapters.slack_interactivity import make_signing_secret_provider

    def get_parameter(name: str, **options: Any) -> str:
        from chalicelib.adapters import aws  # boto3: only when the secret lives in SSM

        return aws.get_parameter_value(name, **options)

    def get_secret(name: str, **options: Any) -> str:
        from chalicelib.adapters import aws  # boto3: only when the secret lives in Secrets Manager

        return aws.get_secret_value(name, **options)

    return make_signing_secret_provider(
        parameter=settings.slack_signing_secret_parameter,
        secret=settings.slack_signing_secret,
        get_parameter=get_parameter,
        get_secret=get_secret,
    )


def _approvals(deps: Deps) -> Approvals:
    approvals: Approvals = _cached("approvals", deps, lambda: build_approvals(deps))
    return approvals


def _poster(settings: Settings) -> ResponsePoster:
    from chalicelib.adapters.slack_interactivity import ResponsePoster

    poster: ResponsePoster = _cached("poster", settings, lambda: ResponsePoster(settings.slack_response_url_base))
    return poster


def _cached(name: str, owner: object, build: Callable[[], Any]) -> Any:
    """One value per container, rebuilt when what it was built from changes (tests and the demo reset those)."""
    with _lock:
        entry = _state.get(name)
        if entry is None or entry[0] is not owner:
            entry = (owner, build())
            _state[name] = entry
        return entry[1]
