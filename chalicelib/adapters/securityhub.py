"""The Security Hub gateway: the bot's findings imported, listed and resolved (calls through aws._call)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.aws import _call

if TYPE_CHECKING:
    from mypy_boto3_securityhub.client import SecurityHubClient


class SecurityHubGateway:
    """Findings for the bot's own account (docs/security-hub.md); each call takes at most 100 findings."""

    def __init__(self, client: SecurityHubClient) -> None:
        self._client = client

    def import_findings(self, findings: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """BatchImportFindings; returns (finding id, error code) of those Security Hub refused."""
        response = _call("BatchImportFindings", self._client.batch_import_findings, Findings=list(findings))
        return [(str(f.get("Id", "")), str(f.get("ErrorCode", "Unknown"))) for f in response.get("FailedFindings", [])]

    def resolve_findings(
        self, identifiers: Sequence[Mapping[str, str]], note: str, author: str
    ) -> list[tuple[str, str]]:
        """BatchUpdateFindings: workflow RESOLVED, with a note; returns (finding id, error code) of those refused."""
        response = _call(
            "BatchUpdateFindings",
            self._client.batch_update_findings,
            FindingIdentifiers=[dict(i) for i in identifiers],
            Workflow={"Status": "RESOLVED"},
            Note={"Text": note, "UpdatedBy": author},
        )
        return [
            (str(f.get("FindingIdentifier", {}).get("Id", "")), str(f.get("ErrorCode", "Unknown")))
            for f in response.get("UnprocessedFindings", [])
        ]

    def list_active_finding_ids(self, product_arn: str, generator_id: str, ids: Sequence[str] = ()) -> set[str]:
        """Ids of the ACTIVE findings of ``generator_id`` under ``product_arn`` (only ``ids`` if given), every page."""
        filters: dict[str, Any] = {
            "ProductArn": [{"Value": product_arn, "Comparison": "EQUALS"}],
            "GeneratorId": [{"Value": generator_id, "Comparison": "EQUALS"}],
            "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
        }
        if ids:
            filters["Id"] = [{"Value": i, "Comparison": "EQUALS"} for i in ids]
        found: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            response = _call("GetFindings", self._client.get_findings, **kwargs)
            for finding in response.get("Findings", []):
                # Checked here too: a stand-in that ignores filters must not resolve another tool's finding.
                if finding.get("GeneratorId") == generator_id and finding.get("RecordState") == "ACTIVE":
                    found.add(str(finding["Id"]))
            token = response.get("NextToken")
            if not token:
                return found if not ids else found & set(ids)
