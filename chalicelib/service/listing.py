"""How a scan pages through an account and picks up where it stopped: its two listings and its tokens.

A whole-account scan lists with GetAccountAuthorizationDetails (roles with their tags, 1,000 a call); a
scan under a path prefix, or in an account that denies that call, lists with ListRoles. A continuation
token (``next_token``, the sweep's cursor) names the request it continues, its listing, the page's
marker and how many of the page's roles were done.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.service.deps import Iam


class BadToken(ValueError):
    """A next_token that deputy-guard did not issue (or for another request)."""


def request_digest(role_names: Sequence[str] | None, path_prefix: str) -> str:
    """What a continuation token is bound to: a digest, so a token for 1,000 role names stays short."""
    request = json.dumps({"names": list(role_names or []), "prefix": path_prefix}, separators=(",", ":"))
    return hashlib.sha256(request.encode()).hexdigest()[:32]


def encode_token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadToken("next_token is not one deputy-guard issued") from exc
    if not isinstance(state, dict):
        raise BadToken("next_token is not one deputy-guard issued")
    skip, marker = state.get("skip", 0), state.get("marker")
    if type(skip) is not int or skip < 0 or not (marker is None or isinstance(marker, str)):
        raise BadToken("next_token is not one deputy-guard issued")
    if state.get("listing", LISTING_ROLES) not in (LISTING_DETAILS, LISTING_ROLES):
        raise BadToken("next_token is not one deputy-guard issued")
    return state


# How a scan lists the account; a continuation token names its listing, since each has its own markers
# and order (a token without one predates GetAccountAuthorizationDetails listings: ListRoles).
LISTING_DETAILS = "details"  # GetAccountAuthorizationDetails: documents, paths and tags
LISTING_ROLES = "roles"  # ListRoles: documents and paths; the tags of a flagged role are read on their own


class Listing:
    """The pages of one scan: GetAccountAuthorizationDetails for a whole account, else (or when denied) ListRoles."""

    def __init__(self, iam: Iam, path_prefix: str, source: str | None) -> None:
        self._iam = iam
        self._prefix = path_prefix
        self._on_roles: Callable[[], None] | None = None
        self.source = source or (LISTING_DETAILS if path_prefix == "/" else LISTING_ROLES)

    def when_roles(self, start: Callable[[], None]) -> None:
        """Run ``start`` once, before the first ListRoles, if the scan lists that way (now, or on a refusal)."""
        if self.source == LISTING_ROLES:
            start()
        else:
            self._on_roles = start

    def page(self, marker: str | None) -> Any:
        """One page (``roles``, and the ``marker`` of the next or None) from ``marker`` (None: the first)."""
        if self.source == LISTING_DETAILS:
            page = self._iam.list_role_details_page(marker=marker)
            if page is not None:
                return page
            if marker is not None:
                # Refused part-way (or on resuming an earlier run): the marker means nothing to ListRoles.
                raise BadToken("the listing this scan continues may no longer be read; scan from the start")
            self.source = LISTING_ROLES
            if self._on_roles is not None:
                self._on_roles()
                self._on_roles = None
        return self._iam.list_roles_page(path_prefix=self._prefix, marker=marker)
