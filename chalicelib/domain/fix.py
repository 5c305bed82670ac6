"""The fix (DESIGN 4): add the missing pins to a deep copy of the document, splitting mixed statements (pure).

Only narrows: conditions are added, never changed or removed, and a statement that trusts principals
besides Step Functions keeps them untouched while the Step Functions principals move to a copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.domain.models import EngineOptions, PolicyDoc, Problem, ProblemCode, RoleContext
from chalicelib.domain.policy import clone_json, service_kind, statement_list

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
    """The keys one in-scope statement lacks."""

    index: int
    keys: tuple[str, ...]
    # Under require=either one placed key is enough; under both, every key must be placed.
    any_one: bool


def _source_arn_value(ctx: RoleContext, options: EngineOptions) -> str | list[str]:
    rendered = [template.format(partition=ctx.partition, account=ctx.account_id) for template in options.source_arns]
    return rendered[0] if len(rendered) == 1 else rendered


def _is_states_value(value: Any) -> bool:
    return service_kind(value) == "states"


def _has_other_principals(principal: Mapping[str, Any]) -> bool:
    for kind, value in principal.items():
        values = value if isinstance(value, list) else [value]
        if kind.lower() != "service":
            if values:
                return True
        elif not all(_is_states_value(item) for item in values):
            return True
    return False


def _split_principal(principal: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the original statement keeps, the Step Functions principals that move out)."""
    kept: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for kind, value in principal.items():
        if kind.lower() != "service":
            kept[kind] = value
        elif isinstance(value, list):
            states = [item for item in value if _is_states_value(item)]
            others = [item for item in value if not _is_states_value(item)]
            if others:
                kept[kind] = others
            if states:
                moved[kind] = states
        elif _is_states_value(value):
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

    def derive(self, sid: Any) -> str:
        # IAM accepts only alphanumeric Sids; uniqueness is checked case-insensitively to stay clear of
        # services that compare them that way.
        stem = _NOT_ALPHANUMERIC.sub("", sid) if isinstance(sid, str) else ""
        base = f"{stem}StepFunctions" if stem else "StepFunctionsTrust"
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


def _split_statement(statement: dict[str, Any], sids: _Sids) -> dict[str, Any]:
    """Move the Step Functions principals of ``statement`` (edited in place) into a new statement."""
    kept, moved = _split_principal(statement["Principal"])
    sid = sids.derive(statement.get("Sid"))
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
    by_index = {plan.index: plan for plan in plans}
    arn_value = _source_arn_value(ctx, options)
    problems: list[Problem] = []
    result: list[Any] = []
    for index, statement in enumerate(statements):
        result.append(statement)
        plan = by_index.get(index)
        if plan is None:
            continue
        target = statement
        if _has_other_principals(statement["Principal"]):
            target = _split_statement(statement, sids)
            result.append(target)
        unplaced: list[str] = []
        for key in plan.keys:
            operators, value = (
                (_ACCOUNT_FIX_OPERATORS, ctx.account_id)
                if key == SOURCE_ACCOUNT
                else (_ARN_FIX_OPERATORS, clone_json(arn_value))
            )
            if not _merge(target, key, operators, value):
                unplaced.append(f"{key} ({', '.join(operators)})")
        if unplaced and (not plan.any_one or len(unplaced) == len(plan.keys)):
            problems.append(
                Problem(
                    ProblemCode.CANNOT_MERGE,
                    index,
                    f"every operator the fix may use already holds {' and '.join(unplaced)}; "
                    "a human must merge the conditions",
                )
            )
    if isinstance(fixed["Statement"], dict):
        if len(result) > 1:
            fixed["Statement"] = result
    else:
        fixed["Statement"] = result
    return fixed, problems
