"""Findings in the AWS Security Finding Format (ASFF) for Security Hub (pure).

One finding per role, with a stable ``Id`` (account and role name), so a later import updates the same
finding rather than adding one. Used by the bot (BatchImportFindings on events and sweeps, when
``DEPUTY_GUARD_SECURITY_HUB=true``) and by ``deputy-guard scan --format asff``. The fields and their limits
follow Security Hub's ASFF reference; ``docs/security-hub.md`` shows a finding.

A finding is ``ACTIVE`` (compliance ``FAILED``) while the role lacks its pins or needs a human, and becomes
``ARCHIVED`` (compliance ``PASSED``) once the bot fixed it or the role no longer trusts Step Functions. As the
finding provider, the bot may set ``RecordState`` with BatchImportFindings; the workflow status
(``RESOLVED``) is the customer's field, set with BatchUpdateFindings. An exempt role is suppressed, not
hidden: its finding stays ``ACTIVE`` with ``Workflow.Status`` ``SUPPRESSED`` and the exemption's reason as
its note (a new finding's workflow status may come with its import).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from chalicelib.domain.catalogue import STATES, entries_of
from chalicelib.domain.models import Action, ProblemCode, RoleContext, Verdict
from chalicelib.domain.plan import RoleResult
from chalicelib.domain.policy import to_compact_json

SCHEMA_VERSION: Final = "2018-10-08"
GENERATOR_ID: Final = "deputy-guard/step-functions-trust-policy"
FINDING_TYPES: Final = ("Software and Configuration Checks/AWS Security Best Practices",)
RESOURCE_TYPE: Final = "AwsIamRole"
# AWS's guide to the cross-service confused deputy for Step Functions: the conditions the fix adds.
REMEDIATION_URL: Final = (
    "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html"
    "#prevent-cross-service-confused-deputy"
)
BATCH_SIZE: Final = 100  # BatchImportFindings and BatchUpdateFindings take at most 100 findings a call
PRODUCT_FIELD_PREFIX: Final = "deputy-guard/"
# ASFF limits (characters).
TITLE_LIMIT: Final = 256
DESCRIPTION_LIMIT: Final = 1024
RECOMMENDATION_LIMIT: Final = 512
PRODUCT_FIELD_LIMIT: Final = 2048
# ProductFields holds at most 50 pairs and Security Hub adds a few of its own: the diff gets at most these.
MAX_DIFF_PARTS: Final = 20
RESOLVED_NOTE: Final = (
    "Resolved by deputy-guard: the role's trust policy now pins aws:SourceAccount and aws:SourceArn, "
    "or no longer lets Step Functions assume it."
)
NOTE_AUTHOR: Final = "deputy-guard"

ACTIVE: Final = "ACTIVE"
ARCHIVED: Final = "ARCHIVED"
SUPPRESSED: Final = "SUPPRESSED"
NOTE_LIMIT: Final = 512
_ELLIPSIS: Final = "…"
# A foreign account or a public principal may be a backdoor: the most urgent findings.
_CRITICAL_CODES: Final = frozenset({ProblemCode.FOREIGN_ACCOUNT, ProblemCode.PUBLIC_PRINCIPAL})
_FINDINGS: Final = frozenset({Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW})


def product_arn(partition: str, region: str, account: str) -> str:
    """The ProductArn of a custom integration (the account's own ``default`` product)."""
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def finding_id(account: str, role_name: str) -> str:
    """The finding's Id: one per role and account (role names are unique within an account)."""
    return f"{account}/{GENERATOR_ID}/{role_name}"


def timestamp(moment: datetime) -> str:
    """An ASFF timestamp: RFC 3339 in UTC with milliseconds, ``2026-11-30T12:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_finding(result: RoleResult) -> bool:
    """Whether the role is an open finding: a problem the run did not fix (exempt roles stay visible)."""
    return result.verdict in _FINDINGS and result.action not in (Action.FIXED, Action.SKIPPED)


def is_resolved(result: RoleResult) -> bool:
    """Whether the role's finding, if any, is settled: fixed by this run, or no longer a problem."""
    return result.action is Action.FIXED or result.verdict in (Verdict.COMPLIANT, Verdict.NOT_APPLICABLE)


def severity(result: RoleResult) -> str:
    """CRITICAL for a foreign account or a public principal, HIGH for missing pins, MEDIUM for other reviews."""
    codes = {p.code for p in result.evaluation.problems}
    if codes & _CRITICAL_CODES:
        return "CRITICAL"
    if result.verdict is Verdict.NON_COMPLIANT:
        return "HIGH"
    return "MEDIUM" if result.verdict is Verdict.NEEDS_REVIEW else "INFORMATIONAL"


def to_finding(result: RoleResult, *, region: str, now: datetime, resolved: bool = False) -> dict[str, Any]:
    """The role's ASFF finding: ``ACTIVE`` while it is a problem, ``ARCHIVED`` once ``resolved``."""
    context = RoleContext.from_role_arn(result.role_arn)
    account, partition = context.account_id, context.partition
    when = timestamp(now)
    label = "INFORMATIONAL" if resolved else severity(result)
    codes = sorted({p.code.value for p in result.evaluation.problems})
    finding: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(account, result.role_name),
        "ProductArn": product_arn(partition, region, account),
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": account,
        "Types": list(FINDING_TYPES),
        "CreatedAt": when,
        "UpdatedAt": when,
        "Severity": {"Label": label, "Original": result.verdict.value},
        "Title": _clip(_title(result), TITLE_LIMIT),
        "Description": _clip(_description(result, codes), DESCRIPTION_LIMIT),
        "Remediation": {
            "Recommendation": {
                "Text": _clip(_recommendation(result, context), RECOMMENDATION_LIMIT),
                "Url": REMEDIATION_URL,
            }
        },
        "ProductFields": _product_fields(result, codes),
        "Resources": [_resource(result, context, region)],
        "Compliance": {"Status": "PASSED" if resolved else "FAILED"},
        "RecordState": ARCHIVED if resolved else ACTIVE,
        # Security Hub wants a provider's later changes to severity and types here (not in Severity/Types).
        "FindingProviderFields": {
            "Severity": {"Label": label, "Original": result.verdict.value},
            "Types": list(FINDING_TYPES),
        },
    }
    if result.action is Action.EXEMPT and not resolved:
        finding["Workflow"] = {"Status": SUPPRESSED}
        finding["Note"] = {
            "Text": _clip(f"Exempt: {result.reason}", NOTE_LIMIT),
            "UpdatedBy": NOTE_AUTHOR,
            "UpdatedAt": when,
        }
    return finding


def to_findings(results: Sequence[RoleResult], *, region: str, now: datetime) -> list[dict[str, Any]]:
    """Findings for a scan: every open finding ACTIVE, every role this run fixed ARCHIVED."""
    findings = []
    for result in results:
        if is_finding(result):
            findings.append(to_finding(result, region=region, now=now))
        elif result.action is Action.FIXED:
            findings.append(to_finding(result, region=region, now=now, resolved=True))
    return findings


def identifier(finding: dict[str, Any]) -> dict[str, str]:
    """What BatchUpdateFindings names a finding by."""
    return {"Id": str(finding["Id"]), "ProductArn": str(finding["ProductArn"])}


def batches(items: Sequence[Any], size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size`` (Security Hub's per-call limit)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# --- the parts -------------------------------------------------------------------------------------


def _title(result: RoleResult) -> str:
    if result.verdict is Verdict.NEEDS_REVIEW:
        return f"IAM role {result.role_name}: its Step Functions trust policy needs a human review"
    return f"IAM role {result.role_name} lets Step Functions assume it without confused-deputy conditions"


def _description(result: RoleResult, codes: Sequence[str]) -> str:
    problems = " ".join(f"{p.message.rstrip('.')}." for p in result.evaluation.problems)
    return (
        f"deputy-guard: the trust policy of {result.role_arn} is {result.verdict.value} "
        f"({', '.join(codes) or 'no problem'}). {problems} deputy-guard's action: {result.action.value} "
        f"({result.reason})."
    )


def _recommendation(result: RoleResult, context: RoleContext) -> str:
    account = context.account_id
    if result.action is Action.FIXED:
        return (
            f"deputy-guard added the conditions (change {result.change_id or '?'}); "
            f"`deputy-guard revert {result.role_name}` restores the recorded original."
        )
    if result.verdict is Verdict.NEEDS_REVIEW:
        return (
            "A human must decide: deputy-guard never rewrites such a policy. Remove what the problems name, "
            "then pin aws:SourceAccount and aws:SourceArn to this account. The policy is in Resources[0].Details."
        )
    entries = entries_of(result.evaluation.services) or (STATES,)
    pins = "; ".join(
        (f"StringEquals aws:SourceAccount={account} and " if entry.sends_source_account else "")
        + f"ArnLike aws:SourceArn=arn:{context.partition}:{entry.arn_prefix}:*:{account}:* to each statement "
        f"trusting {entry.principal}"
        for entry in entries
    )
    applies = (
        f"`deputy-guard scan --fix --role {result.role_name}` applies it."
        if result.evaluation.auto_fix
        else "deputy-guard never applies it (advise level): verify it against the evidence first."
    )
    evidence = " ".join(f"AWS evidence: {entry.evidence}" for entry in entries)
    return f"Add {pins} (the patch is in ProductFields deputy-guard/Diff). {applies} {evidence}"


def _product_fields(result: RoleResult, codes: Sequence[str]) -> dict[str, str]:
    fields = {
        f"{PRODUCT_FIELD_PREFIX}Verdict": result.verdict.value,
        f"{PRODUCT_FIELD_PREFIX}Action": result.action.value,
        f"{PRODUCT_FIELD_PREFIX}Reason": _clip(result.reason, PRODUCT_FIELD_LIMIT),
        f"{PRODUCT_FIELD_PREFIX}ProblemCodes": ",".join(codes),
    }
    if result.change_id:
        fields[f"{PRODUCT_FIELD_PREFIX}ChangeId"] = result.change_id
    for index, part in enumerate(_diff_parts(result.diff)):
        fields[f"{PRODUCT_FIELD_PREFIX}Diff" + (f"/{index + 1}" if index else "")] = part
    return {key: value for key, value in fields.items() if value}


def _diff_parts(diff: str) -> list[str]:
    """The unified diff in ProductFields-sized parts (Diff, Diff/2, ...), the last marked if cut."""
    if not diff:
        return []
    parts = [diff[i : i + PRODUCT_FIELD_LIMIT] for i in range(0, len(diff), PRODUCT_FIELD_LIMIT)]
    if len(parts) > MAX_DIFF_PARTS:
        parts = parts[:MAX_DIFF_PARTS]
        parts[-1] = parts[-1][: PRODUCT_FIELD_LIMIT - 1] + _ELLIPSIS
    return parts


def _resource(result: RoleResult, context: RoleContext, region: str) -> dict[str, Any]:
    details: dict[str, Any] = {"RoleName": result.role_name, "Path": context.path}
    if result.before is not None:
        # URL-encoded JSON, as IAM and AWS Config give a trust policy.
        details["AssumeRolePolicyDocument"] = quote(to_compact_json(result.before), safe="")
    return {
        "Type": RESOURCE_TYPE,
        "Id": result.role_arn,
        "Partition": context.partition,
        "Region": region,
        "Details": {"AwsIamRole": details},
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS
