"""Terraform plans (``terraform show -json plan.out``): the trust policies of ``aws_iam_role`` changes.

Each managed ``aws_iam_role`` in ``resource_changes`` gives ``change.after.assume_role_policy``, a JSON
string. A role the plan deletes is skipped. A policy Terraform knows only after apply
(``after_unknown.assume_role_policy``) is reported as unknown, never passed over.

The deploying account is what the plan itself proves: an existing role's ARN (``change.before.arn``), or
else the ``aws_caller_identity`` data source when every one in the plan names the same account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from deputy_guard.iac.site import Kind, Site

__all__ = ["is_plan", "read_plan"]

ROLE_TYPE: Final = "aws_iam_role"
_ROLE_ARN: Final = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/")
_ACCOUNT: Final = re.compile(r"\d{12}")
_PARTITION: Final = re.compile(r"aws(?:-[a-z]+)*")


def is_plan(data: Any) -> bool:
    """A ``terraform show -json`` plan: ``resource_changes``, or a format and Terraform version with planned values."""
    if not isinstance(data, dict):
        return False
    if isinstance(data.get("resource_changes"), list):
        return True
    return "terraform_version" in data and "planned_values" in data


def _modules(module: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(module, Mapping):
        yield module
        children = module.get("child_modules")
        if isinstance(children, list):
            for child in children:
                yield from _modules(child)


def _data_values(plan: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    """The known values of every ``data.<kind>`` the plan read, wherever it sits."""
    for section in ("prior_state", "planned_values"):
        holder = plan.get(section)
        root = holder.get("values", holder) if isinstance(holder, Mapping) else None
        root = root.get("root_module") if isinstance(root, Mapping) else None
        for module in _modules(root):
            for resource in module.get("resources") or ():
                if isinstance(resource, Mapping) and resource.get("mode") == "data" and resource.get("type") == kind:
                    values = resource.get("values")
                    if isinstance(values, Mapping):
                        yield values
    for change in plan.get("resource_changes") or ():
        if isinstance(change, Mapping) and change.get("mode") == "data" and change.get("type") == kind:
            after = change.get("change", {}).get("after") if isinstance(change.get("change"), Mapping) else None
            if isinstance(after, Mapping):
                yield after


def _only(values: Iterator[Any], pattern: re.Pattern[str]) -> str | None:
    found = {value for value in values if isinstance(value, str) and pattern.fullmatch(value)}
    return found.pop() if len(found) == 1 else None


def plan_identity(plan: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(account, partition) from the plan's caller-identity and partition data sources, when unambiguous."""
    account = _only((v.get("account_id") for v in _data_values(plan, "aws_caller_identity")), _ACCOUNT)
    partition = _only((v.get("partition") for v in _data_values(plan, "aws_partition")), _PARTITION)
    if partition is None:
        arns = (v.get("arn") for v in _data_values(plan, "aws_caller_identity"))
        partition = _only(
            (arn.split(":")[1] for arn in arns if isinstance(arn, str) and arn.count(":") >= 5), _PARTITION
        )
    return account, partition


def _site(change: Mapping[str, Any], identity: tuple[str | None, str | None]) -> Site | None:
    body = change.get("change")
    if not isinstance(body, Mapping):
        return None
    actions = body.get("actions")
    if not isinstance(actions, list) or ("delete" in actions and "create" not in actions):
        return None
    after = body.get("after")
    after = after if isinstance(after, Mapping) else {}
    address = str(change.get("address") or f"{ROLE_TYPE}.{change.get('name')}")
    unknown_values = body.get("after_unknown")
    unknown = isinstance(unknown_values, Mapping) and unknown_values.get("assume_role_policy") is True
    account, partition = identity
    before = body.get("before")
    arn = before.get("arn") if isinstance(before, Mapping) else None
    match = _ROLE_ARN.match(arn) if isinstance(arn, str) else None
    if match is not None:
        partition, account = match.group(1), match.group(2)
    name = after.get("name")
    path = after.get("path")
    return Site(
        kind=Kind.TERRAFORM,
        resource=address,
        label=address,
        line=None,
        policy=after.get("assume_role_policy"),
        account=account,
        partition=partition,
        role_path=path if isinstance(path, str) and path.startswith("/") and path.endswith("/") else "/",
        role_name=name if isinstance(name, str) else address,
        unknown=(
            "assume_role_policy is known only after apply (Terraform computes it then): deputy-guard cannot "
            "see which principals it trusts; make it known at plan time, or check the role once it exists"
            if unknown
            else None
        ),
    )


def read_plan(plan: Mapping[str, Any]) -> list[Site]:
    """The trust policies of the roles a plan creates, updates or keeps, in the plan's order."""
    identity = plan_identity(plan)
    sites: list[Site] = []
    for change in plan.get("resource_changes") or ():
        if (
            isinstance(change, Mapping)
            and change.get("mode", "managed") == "managed"
            and change.get("type") == ROLE_TYPE
        ):
            site = _site(change, identity)
            if site is not None:
                sites.append(site)
    return sites
