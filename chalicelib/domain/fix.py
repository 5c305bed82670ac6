"""The fix: add the missing pins to a deep copy of the document, splitting mixed statements (pure).

Only narrows: conditions are added, never changed or removed, and a statement that trusts principals
besides the service it pins keeps them untouched while that service's principals move to a copy, one copy
per service, so no service is pinned with another's ARN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.domain.catalogue import STATES, Entry
from chalicelib.domain.models import EngineOptions, PolicyDoc, Problem, ProblemCode, RoleContext
from chalicelib.domain.policy import clone_json, service_match, statement_list

__all__ = ["SOURCE_ACCOUNT", "SOURCE_ARN", "FixPlan", "to_fixed_document"]

SOURCE_ACCOUNT: Final = "aws:SourceAccount"
SOURCE_ARN: Final = "aws:SourceArn"

# Where the fix puts each key, in order of preference. Each later operator means the same thing for
# the value the fix writes, and is used only when an earlier block already holds the key: overwriting
# an existing value could widen access, and a duplicate JSON key would be ambiguous.
_ACCOUNT_FIX_OPERATORS: Final = ("StringEquals", "StringLike")
# Not StringLike: its * matches ":" too, so the wildcard value would not pin the account there. ForAnyValue:ArnLike
# matches a single-valued key exactly as ArnLike does (and fails when the key is absent).
_ARN_FIX_OPERATORS: Final = ("ArnLike", "ArnEquals", "ForAnyValue:ArnLike")


@dataclass(frozen=True, slots=True)
class FixPlan:
    """The keys one service lacks in one in-scope statement."""

    index: int
    keys: tuple[str, ...]
    # Under require=either one placed key is enough; under both, every key must be placed.
    any_one: bool
    entry: Entry = STATES


def _source_arn_value(ctx: RoleContext, options: EngineOptions, entry: Entry) -> str | list[str]:
    # DEPUTY_GUARD_SOURCE_ARN narrows the Step Functions pin; every other service gets its account-wide pin.
    templates = options.source_arns if entry == STATES else (entry.source_arn_template,)
    rendered = [template.format(partition=ctx.partition, account=ctx.account_id) for template in templates]
    return rendered[0] if len(rendered) == 1 else rendered


def _has_principals_beyond(
    principal: Mapping[str, Any], entries: frozenset[Entry], selection: tuple[Entry, ...]
) -> bool:
    for kind, value in principal.items():
        values = value if isinstance(value, list) else [value]
        if kind.lower() != "service":
            if values:
                return True
        elif not all(service_match(item, selection) in entries for item in values):
            return True
    return False


def _split_principal(
    principal: Mapping[str, Any], entry: Entry, selection: tuple[Entry, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the original statement keeps, the principals of ``entry`` that move out)."""
    kept: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for kind, value in principal.items():
        if kind.lower() != "service":
            kept[kind] = value
        elif isinstance(value, list):
            mine = [item for item in value if service_match(item, selection) == entry]
            others = [item for item in value if service_match(item, selection) != entry]
            if others:
                kept[kind] = others
            if mine:
                moved[kind] = mine
        elif service_match(value, selection) == entry:
            moved[kind] = value
        else:
            kept[kind] = value
    return kept, moved


_NOT_ALPHANUMERIC: Final = re.compile(r"[^A-Za-z0-9]")


@dataclass(slots=True)
class _Sids:
    """The Sids a document uses (folded), and where each derived Sid's numbering goes on."""

    used: set[str]
    next_number: dict[str, int]

    def derive(self, sid: Any, service: str) -> str:
        # IAM accepts only alphanumeric Sids; uniqueness is checked case-insensitively to stay clear of
        # services that compare them that way.
        stem = _NOT_ALPHANUMERIC.sub("", sid) if isinstance(sid, str) else ""
        base = f"{stem}{service}" if stem else f"{service}Trust"
        folded = base.lower()
        # Numbers below next_number were all taken when last tried, and the used set only grows: resume
        # there, so that splitting thousands of statements with one Sid stays linear.
        number = self.next_number.get(folded, 2)
        candidate = base if number == 2 else f"{base}{number}"
        while candidate.lower() in self.used:
            candidate, number = f"{base}{number}", number + 1
        self.next_number[folded] = number
        self.used.add(candidate.lower())
        return candidate


def _split_statement(
    statement: dict[str, Any], entry: Entry, selection: tuple[Entry, ...], sids: _Sids
) -> dict[str, Any]:
    """Move the principals of ``entry`` out of ``statement`` (edited in place) into a new statement."""
    kept, moved = _split_principal(statement["Principal"], entry, selection)
    sid = sids.derive(statement.get("Sid"), entry.sid_stem)
    new: dict[str, Any] = {} if "Sid" in statement else {"Sid": sid}
    for key, value in statement.items():
        if key == "Sid":
            new[key] = sid
        elif key == "Principal":
            new[key] = moved
        else:
            new[key] = clone_json(value)
    statement["Principal"] = kept
    return new


def _merge(statement: dict[str, Any], key: str, operators: Iterable[str], value: Any) -> bool:
    """Add ``key`` under the first operator whose block does not already hold it; False if none is free."""
    condition: dict[str, dict[str, Any]] = statement.get("Condition", {})
    folded_key = key.lower()
    for operator in operators:
        folded = operator.lower()
        blocks = [name for name in condition if name.lower() == folded]
        if any(k.lower() == folded_key for name in blocks for k in condition[name]):
            continue
        if "Condition" not in statement:
            statement["Condition"] = condition
        if blocks:
            condition[blocks[0]][key] = value
        else:
            condition[operator] = {key: value}
        return True
    return False


def to_fixed_document(
    document: PolicyDoc, plans: list[FixPlan], ctx: RoleContext, options: EngineOptions
) -> tuple[PolicyDoc, list[Problem]]:
    """The fixed copy of ``document``, and a cannot_merge problem for each statement the fix cannot place."""
    fixed: PolicyDoc = clone_json(document)
    statements = statement_list(fixed)
    sids = _Sids({st["Sid"].lower() for st in statements if isinstance(st.get("Sid"), str)}, {})
    by_index: dict[int, list[FixPlan]] = {}
    for plan in plans:
        by_index.setdefault(plan.index, []).append(plan)
    problems: list[Problem] = []
    result: list[Any] = []
    for index, statement in enumerate(statements):
        result.append(statement)
        planned = by_index.get(index)
        if not planned:
            continue
        movers = list(planned)
        targets: list[tuple[FixPlan, dict[str, Any]]] = []
        entries = frozenset(plan.entry for plan in planned)
        if not _has_principals_beyond(statement["Principal"], entries, options.services):
            # Nothing else would be left behind: the first service keeps the statement and is pinned in place.
            targets.append((movers.pop(0), statement))
        # Every split copies the statement before any pin is added, so no copy inherits another's pins.
        for plan in movers:
            target = _split_statement(statement, plan.entry, options.services, sids)
            result.append(target)
            targets.append((plan, target))
        for plan, target in targets:
            problem = _place(target, plan, ctx, options, index)
            if problem is not None:
                problems.append(problem)
    if isinstance(fixed["Statement"], dict):
        if len(result) > 1:
            fixed["Statement"] = result
    else:
        fixed["Statement"] = result
    return fixed, problems


def _place(
    target: dict[str, Any], plan: FixPlan, ctx: RoleContext, options: EngineOptions, index: int
) -> Problem | None:
    """Merge one service's missing pins into its statement; a cannot_merge problem when they do not fit."""
    unplaced: list[str] = []
    for key in plan.keys:
        operators, value = (
            (_ACCOUNT_FIX_OPERATORS, ctx.account_id)
            if key == SOURCE_ACCOUNT
            else (_ARN_FIX_OPERATORS, _source_arn_value(ctx, options, plan.entry))
        )
        if not _merge(target, key, operators, value):
            unplaced.append(f"{key} ({', '.join(operators)})")
    if unplaced and (not plan.any_one or len(unplaced) == len(plan.keys)):
        return Problem(
            ProblemCode.CANNOT_MERGE,
            index,
            f"every operator the fix may use already holds {' and '.join(unplaced)}; a human must merge the conditions",
            plan.entry.principal,
        )
    return None
