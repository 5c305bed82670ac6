"""Findings in Security Hub (``DEPUTY_GUARD_SECURITY_HUB=true``): imported on events and sweeps, resolved when settled.

After an event, a sweep or a remediation, every open finding (a role lacking its pins or needing a human) is
imported ``ACTIVE``; a role the run fixed, and a role whose ACTIVE finding no longer applies (fixed by hand,
no longer trusting Step Functions), is imported ``ARCHIVED`` and its workflow set to ``RESOLVED``. Security
Hub is a report, never a gate: a failure here is logged and counted, and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.asff import (
    GENERATOR_ID,
    NOTE_AUTHOR,
    RESOLVED_NOTE,
    batches,
    finding_id,
    identifier,
    is_finding,
    is_resolved,
    product_arn,
    to_finding,
)
from chalicelib.domain.models import Action, RoleContext
from chalicelib.domain.plan import RoleResult
from chalicelib.service.deps import Deps, FindingsHub

# Up to this many settled roles are looked up by Id; more (a sweep) list every ACTIVE finding instead.
MAX_ID_LOOKUP = 20


def record_findings(deps: Deps, results: Sequence[RoleResult]) -> None:
    """Import the run's open findings and resolve the settled ones, for the bot's own account only."""
    hub = deps.security_hub
    if hub is None or not results:
        return
    try:
        account = hub.account()
        own = [r for r in results if RoleContext.from_role_arn(r.role_arn).account_id == account]
        if len(own) < len(results):
            deps.logger.info(
                "Security Hub: findings of other accounts not sent", extra={"skipped": len(results) - len(own)}
            )
        now = deps.clock()
        opened = [to_finding(r, region=deps.region, now=now) for r in own if is_finding(r)]
        settled = _settled(deps, hub, account, [r for r in own if is_resolved(r)])
        closed = [to_finding(r, region=deps.region, now=now, resolved=True) for r in settled]
        _send(deps, hub, opened, closed)
    except AwsError as exc:
        deps.metrics.add_metric("SecurityHubFailed")
        deps.logger.warning("Security Hub findings not recorded", extra={"error": str(exc)})


def _settled(deps: Deps, hub: FindingsHub, account: str, candidates: list[RoleResult]) -> list[RoleResult]:
    """The settled roles whose finding must be resolved: fixed now, or holding an ACTIVE finding."""
    fixed = [r for r in candidates if r.action is Action.FIXED]
    others = [r for r in candidates if r.action is not Action.FIXED]
    if not others:
        return fixed
    partition = RoleContext.from_role_arn(others[0].role_arn).partition
    ids = {finding_id(account, r.role_name): r for r in others}
    # A compliant role usually never had a finding: ask which ones did, rather than archive thousands.
    active = hub.gateway.list_active_finding_ids(
        product_arn(partition, deps.region, account), GENERATOR_ID, sorted(ids) if len(ids) <= MAX_ID_LOOKUP else ()
    )
    return fixed + [result for key, result in ids.items() if key in active]


def _send(deps: Deps, hub: FindingsHub, opened: list[dict[str, Any]], closed: list[dict[str, Any]]) -> None:
    refused: list[tuple[str, str]] = []
    for batch in batches(opened + closed):
        refused += hub.gateway.import_findings(batch)
    rejected = {key for key, _code in refused}
    to_resolve = [identifier(f) for f in closed if f["Id"] not in rejected]
    for batch in batches(to_resolve):
        refused += hub.gateway.resolve_findings(batch, RESOLVED_NOTE, NOTE_AUTHOR)
    deps.metrics.add_metric("FindingsImported", len(opened) + len(closed) - len(rejected))
    if to_resolve:
        deps.metrics.add_metric("FindingsResolved", len(to_resolve))
    if refused:
        deps.metrics.add_metric("SecurityHubFailed", len(refused))
        deps.logger.warning(
            "Security Hub refused some findings",
            extra={"refused": [{"id": i, "code": c} for i, c in refused[:10]], "count": len(refused)},
        )
