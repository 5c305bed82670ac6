"""The IAM gateway: the IAM calls deputy-guard makes, and no others, on IAM's own policy text.

Its client comes from ``chalicelib.adapters.aws`` (the bot's own account or a member account); errors are
translated there into the ``AwsError`` family.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.handlers import json_decode_policies

from chalicelib.adapters.aws import _call
from chalicelib.adapters.errors import AccessDenied, NotFound
from chalicelib.domain.models import PolicyDoc, RoleRecord
from chalicelib.domain.policy import to_compact_json

if TYPE_CHECKING:
    from mypy_boto3_iam.client import IAMClient


def _tags(raw: list[Mapping[str, str]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or []}


def _role(raw: Mapping[str, Any], *, tags_loaded: bool) -> RoleRecord:
    return RoleRecord(
        name=str(raw["RoleName"]),
        arn=str(raw["Arn"]),
        path=str(raw.get("Path", "/")),
        document=raw.get("AssumeRolePolicyDocument") or "",
        tags=_tags(raw.get("Tags")),
        tags_loaded=tags_loaded,
    )


@dataclass(frozen=True)
class RolePage:
    roles: tuple[RoleRecord, ...]
    marker: str | None


class IamGateway:
    """The IAM calls deputy-guard makes, and no others."""

    def __init__(self, client: IAMClient, *, role_details: bool = True) -> None:
        """``role_details=False`` lists as an account that denies GetAccountAuthorizationDetails (ListRoles)."""
        self._client = client
        # botocore decodes IAM's policy documents with json.loads, which keeps the last of duplicate keys and
        # rewrites number literals (1.10 -> 1.1). The engine reads IAM's own text instead, so it can refuse a
        # document with duplicate keys and write back every untouched literal exactly as it was.
        client.meta.events.unregister("after-call.iam", json_decode_policies)
        self._tags_denied = False  # ListRoleTags refused once: read tags with GetRole from then on
        self._details_denied = not role_details  # GetAccountAuthorizationDetails refused once: ListRoles from then on

    def get_role(self, name: str) -> RoleRecord | None:
        """The role with its trust document and tags, or None when it does not exist."""
        try:
            response = _call("GetRole", self._client.get_role, RoleName=name)
        except NotFound:
            return None
        return _role(response["Role"], tags_loaded=True)

    def read_tags(self, role: RoleRecord) -> RoleRecord | None:
        """The listed ``role`` with its tags (ListRoleTags), or None when it no longer exists.

        A dry run's read: the listing already holds the trust document and path, and the tags are all it
        lacks, so it reads only them (a smaller request and response than GetRole, on both sides). A role
        that may not be tag-read (a member role deployed before ``iam:ListRoleTags`` was granted) is read
        with GetRole instead, which carries the tags as well; after the first refusal the gateway goes
        straight to GetRole, so an account with such a role pays one refused call, not one per role.
        """
        if self._tags_denied:
            return self.get_role(role.name)
        tags: list[Mapping[str, str]] = []
        kwargs: dict[str, Any] = {"RoleName": role.name}
        while True:
            try:
                response = _call("ListRoleTags", self._client.list_role_tags, **kwargs)
            except NotFound:
                return None
            except AccessDenied:
                self._tags_denied = True
                return self.get_role(role.name)
            tags.extend(response.get("Tags", []))
            if not response.get("IsTruncated") or not response.get("Marker"):
                return replace(role, tags=_tags(tags), tags_loaded=True)
            kwargs["Marker"] = response["Marker"]

    def list_roles_page(self, *, path_prefix: str = "/", marker: str | None = None, max_items: int = 1000) -> RolePage:
        """One page of ListRoles; the listing carries trust documents and paths but not tags."""
        kwargs: dict[str, Any] = {"PathPrefix": path_prefix, "MaxItems": max_items}
        if marker:
            kwargs["Marker"] = marker
        response = _call("ListRoles", self._client.list_roles, **kwargs)
        roles = tuple(_role(r, tags_loaded=False) for r in response.get("Roles", []))
        next_marker = response.get("Marker") if response.get("IsTruncated") else None
        return RolePage(roles=roles, marker=next_marker)

    def list_role_details_page(self, *, marker: str | None = None, max_items: int = 1000) -> RolePage | None:
        """One page of GetAccountAuthorizationDetails' roles, or None when that call is denied.

        The page carries each role's trust document, path and tags, so a whole-account scan needs no call
        per role. A denial (a member role deployed before ``iam:GetAccountAuthorizationDetails`` was granted)
        is remembered: the account pays one refused call and is listed with ListRoles from then on.
        """
        if self._details_denied:
            return None
        kwargs: dict[str, Any] = {"Filter": ["Role"], "MaxItems": max_items}
        if marker:
            kwargs["Marker"] = marker
        try:
            response = _call("GetAccountAuthorizationDetails", self._client.get_account_authorization_details, **kwargs)
        except AccessDenied:
            self._details_denied = True
            return None
        roles = tuple(_role(r, tags_loaded=True) for r in response.get("RoleDetailList", []))
        next_marker = response.get("Marker") if response.get("IsTruncated") else None
        return RolePage(roles=roles, marker=next_marker)

    def iter_roles(self, *, path_prefix: str = "/") -> Iterator[RoleRecord]:
        marker: str | None = None
        while True:
            page = self.list_roles_page(path_prefix=path_prefix, marker=marker)
            yield from page.roles
            if page.marker is None:
                return
            marker = page.marker

    def update_assume_role_policy(self, name: str, document: PolicyDoc) -> None:
        """Replace the trust policy (sent compact: IAM counts the policy without whitespace)."""
        body = to_compact_json(document)
        _call("UpdateAssumeRolePolicy", self._client.update_assume_role_policy, RoleName=name, PolicyDocument=body)

    def tag_role(self, name: str, tags: Mapping[str, str]) -> None:
        _call(
            "TagRole",
            self._client.tag_role,
            RoleName=name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def get_assume_role_policy_size_quota(self) -> int | None:
        """The account's trust-policy size quota, or None when the summary does not carry it."""
        response = _call("GetAccountSummary", self._client.get_account_summary)
        value = response.get("SummaryMap", {}).get("AssumeRolePolicySizeQuota")
        return int(value) if value else None
