"""Recognise an input by its content and find the trust policies in it.

Plain trust policies (JSON, or URL-encoded JSON as IAM returns it), ``GetRole``/``ListRoles`` responses,
CloudFormation templates in JSON or YAML (SAM and CDK included) and Terraform plans in JSON.

``strict`` is for inputs nobody named (a directory walk, or ``--ignore-unknown``): there an input must
clearly be one of those kinds or it is skipped, so a repository's ``package.json`` or an S3 bucket
policy is never judged. A named input is taken at its word: anything that is not a template, plan or
role is read as a trust policy, and its faults are reported as before.
"""

from __future__ import annotations

import re
from typing import Any, Final

from chalicelib.domain.models import RoleContext
from chalicelib.domain.policy import PolicyError, decode_document
from deputy_guard.iac import cloudformation, jsonpos, terraform
from deputy_guard.iac.files import STDIN
from deputy_guard.iac.site import InputError, Kind, Site

__all__ = ["sites_in"]

# Text that says "I am a CloudFormation template" even when it does not parse.
_TEMPLATE_MARKERS: Final = re.compile(r"AWSTemplateFormatVersion|AWS::IAM::Role|AWS::Serverless-2016-10-31")
# A template CloudFormation would refuse, or one whose resources are hidden from the reader: never a silent pass.
_NO_RESOURCES: Final = (
    "looks like a CloudFormation template (AWSTemplateFormatVersion, Transform or Resources) but has no "
    "resources deputy-guard can read: each resource needs a Type"
)
# JSON that says "I am a policy, a role or a plan": a walk reports it when it does not parse (a truncated
# file), where other broken JSON (a tsconfig.json with comments) is not its business.
_JSON_MARKERS: Final = re.compile(
    _TEMPLATE_MARKERS.pattern + r'|"Statement"|"AssumeRolePolicyDocument"|"resource_changes"|"planned_values"'
)


def _statements(data: dict[str, Any]) -> list[Any] | None:
    statements = data.get("Statement")
    if isinstance(statements, dict):
        return [statements]
    return statements if isinstance(statements, list) and statements else None


def _is_trust_policy(data: Any) -> bool:
    """A policy with principals and no resources: how a trust policy differs from other policies."""
    statements = _statements(data) if isinstance(data, dict) else None
    if statements is None or not all(isinstance(statement, dict) for statement in statements):
        return False
    if any("Resource" in statement or "NotResource" in statement for statement in statements):
        return False
    return any("Principal" in statement or "NotPrincipal" in statement for statement in statements)


def _first_line(text: str) -> int:
    stripped = text.lstrip()
    return text.count("\n", 0, len(text) - len(stripped)) + 1


def _role_site(role: dict[str, Any], line: int | None) -> Site:
    arn = role.get("Arn")
    if not isinstance(arn, str):
        raise InputError("the role in the input has no Arn, so its account is unknown: pass --account")
    try:
        context = RoleContext.from_role_arn(arn)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    path = role.get("Path")
    return Site(
        kind=Kind.GET_ROLE,
        resource=context.role_name,
        label=context.role_name,
        line=line,
        policy=role["AssumeRolePolicyDocument"],
        account=context.account_id,
        partition=context.partition,
        role_path=path if isinstance(path, str) and path.startswith("/") else context.path,
        role_name=context.role_name,
    )


def _roles(data: Any) -> list[dict[str, Any]] | None:
    """The roles of a GetRole response, a role object, or a ListRoles response; None for anything else."""
    if not isinstance(data, dict):
        return None
    role = data.get("Role")
    if isinstance(role, dict) and "AssumeRolePolicyDocument" in role:
        return [role]
    if "AssumeRolePolicyDocument" in data:
        return [data]
    roles = data.get("Roles")
    if (
        isinstance(roles, list)
        and roles
        and all(isinstance(r, dict) and "AssumeRolePolicyDocument" in r for r in roles)
    ):
        return roles
    return None


def _json_sites(text: str, name: str, data: Any, strict: bool) -> list[Site] | None:
    if terraform.is_plan(data):
        return terraform.read_plan(data, text)
    if cloudformation.is_template(data):
        try:
            loaded = jsonpos.load(text)
        except ValueError as exc:  # pragma: no cover - json accepted it a moment ago
            raise InputError(f"not JSON: {exc}") from exc
        return cloudformation.read_template(loaded.data, loaded)
    if cloudformation.looks_like_template(data):
        raise InputError(_NO_RESOURCES)
    roles = _roles(data)
    if roles is not None:
        line = _first_line(text) if len(roles) == 1 else None
        return [_role_site(role, line) for role in roles]
    if strict and not _is_trust_policy(data):
        return None
    # The engine decodes the text itself, so what it judges is exactly what was written.
    return [Site(kind=Kind.POLICY, resource=None, label=name, line=_first_line(text), policy=text)]


def _yaml_sites(text: str, name: str, strict: bool) -> list[Site] | None:
    try:
        from deputy_guard.iac import cfnyaml  # PyYAML only when a YAML input turns up
    except ImportError as exc:  # pragma: no cover - PyYAML comes with Chalice and the iac extra
        raise InputError("reading YAML needs PyYAML: pip install 'deputy-guard[iac]'") from exc

    try:
        loaded = cfnyaml.load(text, "<stdin>" if name == STDIN else name)
    except cfnyaml.YamlError as exc:
        if strict and not _TEMPLATE_MARKERS.search(text):
            return None
        raise InputError(f"not JSON, nor YAML that CloudFormation reads: {exc}") from exc
    if cloudformation.is_template(loaded.data):
        return cloudformation.read_template(loaded.data, loaded)
    if cloudformation.looks_like_template(loaded.data):
        raise InputError(_NO_RESOURCES)
    return None


def sites_in(text: str, name: str, *, strict: bool) -> list[Site] | None:
    """The trust policies in one input's text; None when it is none of the kinds (only when ``strict``)."""
    head = text.lstrip()[:1]
    if head in ("{", "[") or (head == "%" and not text.lstrip().startswith("%YAML")):
        try:
            data = decode_document(text)
        except PolicyError as exc:
            if strict and not _JSON_MARKERS.search(text):
                return None
            raise InputError(str(exc)) from exc
        return _json_sites(text, name, data, strict)
    if not head:
        if strict:
            return None
        raise InputError("empty: no trust policy, GetRole response, template or plan to check")
    sites = _yaml_sites(text, name, strict)
    if sites is None and not strict:
        raise InputError("not a trust policy, GetRole response, CloudFormation template or Terraform plan")
    return sites
