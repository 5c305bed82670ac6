"""Terraform plans (``terraform show -json plan.out``): the trust policies of ``aws_iam_role`` changes.

Each managed ``aws_iam_role`` in ``resource_changes`` gives ``change.after.assume_role_policy``, a JSON
string. A role the plan deletes is skipped. A policy Terraform knows only after apply
(``after_unknown.assume_role_policy``) is reported as unknown, never passed over.

The deploying account is what the plan itself proves: an existing role's ARN (``change.before.arn``), or
else the ``aws_caller_identity`` data source when every one in the plan names the same account.

Each role points at its change in the plan file (the line and column of its ``address``), so code scanning
shows the finding there; where the plan's ``configuration`` names the resource's source module and the
address it is declared at, the finding says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
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


_CHANGES_KEY: Final = re.compile(r'"resource_changes"\s*:')


def _position(text: str, address: str, start: int) -> tuple[int | None, int | None, int]:
    """(line, column) of ``"address": "<address>"`` after ``start``, both 1-based, and where to search next."""
    found = re.compile(r'"address"\s*:\s*' + re.escape(json.dumps(address))).search(text, start)
    if found is None:
        return None, None, start
    line_start = text.rfind("\n", 0, found.start()) + 1
    return text.count("\n", 0, found.start()) + 1, found.start() - line_start + 1, found.end()


def _declaration(plan: Mapping[str, Any], change: Mapping[str, Any]) -> str | None:
    """Where the configuration declares a change's resource: its address in its module, and the module's source."""
    configuration = plan.get("configuration")
    module: Any = configuration.get("root_module") if isinstance(configuration, Mapping) else None
    sources: list[str] = []
    module_address = change.get("module_address")
    calls = re.findall(r"module\.([^.\[]+)", module_address) if isinstance(module_address, str) else []
    for name in calls:
        call = module.get("module_calls", {}).get(name) if isinstance(module, Mapping) else None
        if not isinstance(call, Mapping):
            return None
        sources.append(str(call.get("source", "?")))
        module = call.get("module")
    declared = f"{change.get('type')}.{change.get('name')}"
    resources = module.get("resources") if isinstance(module, Mapping) else None
    if not isinstance(resources, list) or not any(
        isinstance(r, Mapping) and r.get("address") == declared for r in resources
    ):
        return None
    where = f"the module {sources[-1]}" if sources else "the root module"
    return f"Declared as {declared} in {where}"


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


def read_plan(plan: Mapping[str, Any], text: str = "") -> list[Site]:
    """The trust policies of the roles a plan creates, updates or keeps, in the plan's order.

    ``text`` is the plan as written, for the line and column of each change.
    """
    identity = plan_identity(plan)
    changes_key = _CHANGES_KEY.search(text)
    search_from = changes_key.end() if changes_key is not None else len(text)
    sites: list[Site] = []
    for change in plan.get("resource_changes") or ():
        if not isinstance(change, Mapping):
            continue
        if change.get("mode", "managed") == "managed" and change.get("type") == ROLE_TYPE:
            site = _site(change, identity)
            if site is not None:
                line, column, search_from = _position(text, str(site.resource), search_from)
                site = replace(site, line=line, column=column, note=_declaration(plan, change))
                sites.append(site)
    return sites
