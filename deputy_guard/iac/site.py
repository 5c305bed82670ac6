"""One trust policy found in an input, with what the input says about its role (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["InputError", "Kind", "Lines", "Site"]


class InputError(Exception):
    """An input that cannot be checked: unreadable, or not what it claims to be. One line of text."""


class Kind(StrEnum):
    """What an input was recognised as."""

    POLICY = "policy"
    GET_ROLE = "get_role"
    CLOUDFORMATION = "cloudformation"
    TERRAFORM = "terraform"


class Lines(Protocol):
    """Where things were written in a loaded document."""

    def key_line(self, mapping: object, key: str) -> int | None: ...

    def has_duplicates(self, mapping: object) -> bool: ...


@dataclass(frozen=True)
class Site:
    """A trust policy to judge.

    ``policy`` is the document as written: a dict, or a JSON string (plain or URL-encoded) that the engine
    decodes itself. For CloudFormation it may hold intrinsics, resolved against ``template`` for each
    deploying account. ``account``/``partition`` are what the input itself proves about the role (a role
    ARN, a plan's caller identity); ``None`` means the check must be told or report it unknown.
    """

    kind: Kind
    resource: str | None
    label: str
    line: int | None
    policy: Any
    template: Mapping[str, Any] | None = None
    account: str | None = None
    partition: str | None = None
    role_path: str = "/"
    role_name: str = ""
    # Why the policy cannot be known before deployment (a Terraform value known only after apply).
    unknown: str | None = None
    duplicate_keys: bool = False
    note: str | None = None
    # The 1-based column where it starts, where the line alone does not place it (a plan on one line).
    column: int | None = None
    # The file the policy is written in, when it is not the input's own (a Terraform module's other file).
    path: str | None = None
    # How a Terraform source wrote the policy, so the fix is shown the same way:
    # "jsonencode", "json" (a heredoc or a string), "file" (file() of a JSON file), or "policy_document:<name>".
    source_form: str | None = None
