"""`deputy-guard scan --format`: the scan report as a table, JSON, CSV, SARIF or ASFF.

* ``json``: the ``POST /scans`` report (docs/scan-report.md), ``schema_version`` first.
* ``csv``: one row per role, for spreadsheets (the ``problems`` column holds the codes, ``;``-separated).
* ``sarif``: SARIF 2.1.0 with ``check``'s rules (deputy_guard.sarif); one result per problem of each open
  finding, located at the role (a logical location, and its ARN as the artifact).
* ``html``: one self-contained page for people (deputy_guard.html_report).
* ``asff``: a JSON array of AWS Security Finding Format findings, ready for
  ``aws securityhub batch-import-findings --findings file://findings.json`` (100 per call).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from chalicelib.domain.asff import is_finding, to_findings
from chalicelib.domain.models import Action, ProblemCode, Verdict
from chalicelib.domain.plan import RoleResult
from deputy_guard.html_report import AccountPart, generated_at, render_html
from deputy_guard.report import render_table
from deputy_guard.sarif import SARIF_SCHEMA, SARIF_VERSION, TOOL_NAME, rule, tool_version

SCAN_FORMATS: Final = ("table", "json", "csv", "sarif", "asff", "html")
CSV_COLUMNS: Final = ("account", "role_name", "role_arn", "verdict", "action", "problems", "reason")
SARIF_FINGERPRINT: Final = "deputyGuardRole/v1"
_LEVELS: Final = {Verdict.NON_COMPLIANT: "error", Verdict.NEEDS_REVIEW: "warning"}


def render_scan(
    report: Any, format_name: str, *, region: str, now: datetime | None = None, cap: int | None = None
) -> str:
    """The merged scan report (chalicelib.service.scan.ScanReport) in ``format_name``, ending in a newline."""
    results: Sequence[RoleResult] = report.results
    if format_name == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if format_name == "csv":
        return to_csv(report.to_dict())
    if format_name == "sarif":
        return json.dumps(to_sarif(results), indent=2) + "\n"
    if format_name == "asff":
        moment = now or datetime.now(UTC)
        return json.dumps(to_findings(results, region=region, now=moment), indent=2) + "\n"
    if format_name == "html":
        part = AccountPart(report.account, tuple(results))
        return render_html([part], generated=generated_at(now), version=tool_version(), many=False)
    return render_table(report.to_dict(), cap=cap) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """One row per role under a header row (RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["results"]:
        codes = ";".join(sorted({p["code"] for p in row["problems"]}))
        account = row["role_arn"].split(":")[4] if row["role_arn"].count(":") >= 5 else report.get("account", "")
        writer.writerow(
            [account, row["role_name"], row["role_arn"], row["verdict"], row["action"], codes, row.get("reason", "")]
        )
    return out.getvalue()


def suppressed(result: RoleResult) -> dict[str, Any]:
    """An exempt role's result is suppressed, not hidden: ``suppressions`` says by whom it was decided and why."""
    if result.action is not Action.EXEMPT:
        return {}
    return {"suppressions": [{"kind": "external", "status": "accepted", "justification": result.reason}]}


def to_sarif(results: Sequence[RoleResult]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one result per problem of every role still open after the scan."""
    codes = list(ProblemCode)
    index = {code.value: position for position, code in enumerate(codes)}
    findings = []
    for result in results:
        level = _LEVELS.get(result.verdict)
        if level is None or not is_finding(result):
            continue
        for problem in result.evaluation.problems:
            where = "the policy" if problem.statement is None else f"statement {problem.statement}"
            key = "\x00".join((result.role_arn, problem.code.value, str(problem.statement)))
            findings.append(
                {
                    "ruleId": problem.code.value,
                    "ruleIndex": index[problem.code.value],
                    "level": level,
                    "message": {
                        "text": f"Role {result.role_name} ({result.verdict.value}, {result.action.value}), "
                        f"{where}: {problem.message}"
                    },
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": result.role_arn}},
                            "logicalLocations": [
                                {"name": result.role_name, "fullyQualifiedName": result.role_arn, "kind": "resource"}
                            ],
                        }
                    ],
                    "partialFingerprints": {SARIF_FINGERPRINT: hashlib.sha256(key.encode()).hexdigest()},
                    **suppressed(result),
                }
            )
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": {"name": TOOL_NAME, "version": tool_version(), "rules": [rule(c) for c in codes]}},
                "invocations": [{"executionSuccessful": True}],
                "results": findings,
            }
        ],
    }
