"""Terraform's policy forms as IAM policy documents (pure): ``aws_iam_policy_document`` statements, and JSON
with interpolations.

A ``statement`` block becomes an IAM statement (``principals`` and ``condition`` blocks merged as the
provider merges them); documents combine by ``sid``; a heredoc's JSON keeps each interpolated string as an
``Fn::Sub`` whose variables are named by the expressions as written.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from deputy_guard.iac.hcl import UNRESOLVED, Block, Translator, attributes, blocks, unresolved

__all__ = ["STATEMENT_KEYS", "interpolated_json", "marker", "merge_statements", "statement"]

# Where an interpolation sat in a heredoc while its JSON is decoded.
_PLACEHOLDER: Final = "@@deputy-guard-{}@@"
_PLACEHOLDERS: Final = re.compile(r"@@deputy-guard-(\d+)@@")
# statement argument -> IAM key
STATEMENT_KEYS: Final = {
    "sid": "Sid",
    "effect": "Effect",
    "actions": "Action",
    "not_actions": "NotAction",
    "resources": "Resource",
    "not_resources": "NotResource",
}


def statement(block: Block, translator: Translator) -> dict[str, Any]:
    arguments = attributes(block.body)
    statement: dict[str, Any] = {}
    for argument, key in STATEMENT_KEYS.items():
        if argument in arguments:
            statement[key] = translator.attribute(arguments[argument])
    statement.setdefault("Effect", "Allow")
    conditions: dict[str, Any] = {}
    for inner in blocks(block.body, block.path):
        if inner.type == "dynamic":
            target = {"principals": "Principal", "not_principals": "NotPrincipal"}.get(
                inner.labels[0] if inner.labels else "", "Condition"
            )
            statement[target] = unresolved(f'a dynamic "{inner.labels[0] if inner.labels else ""}" block')
        elif inner.type in ("principals", "not_principals"):
            key = "Principal" if inner.type == "principals" else "NotPrincipal"
            _add_principals(statement, key, attributes(inner.body), translator)
        elif inner.type == "condition":
            found = attributes(inner.body)
            test = translator.attribute(found["test"]) if "test" in found else None
            variable = translator.attribute(found["variable"]) if "variable" in found else None
            values = translator.attribute(found["values"]) if "values" in found else []
            if isinstance(test, str) and isinstance(variable, str) and not isinstance(conditions.get(test), str):
                conditions.setdefault(test, {})[variable] = values
            else:
                conditions.setdefault(UNRESOLVED, unresolved("a condition whose test or variable is not literal"))
    if conditions:
        statement["Condition"] = conditions.get(UNRESOLVED, conditions)
    return statement


def _add_principals(statement: dict[str, Any], key: str, found: dict[str, Any], translator: Translator) -> None:
    kind = translator.attribute(found["type"]) if "type" in found else None
    identifiers = translator.attribute(found["identifiers"]) if "identifiers" in found else []
    current = statement.get(key)
    if kind == "*" and identifiers == ["*"]:
        statement[key] = "*"
    elif not isinstance(kind, str) or current == "*" or marker(current) == UNRESOLVED:
        statement[key] = current if current == "*" else unresolved("a principal type that is not literal")
    else:
        mapping = current if isinstance(current, dict) else {}
        previous = mapping.get(kind, [])
        items = identifiers if isinstance(identifiers, list) else [identifiers]
        mapping[kind] = (previous if isinstance(previous, list) else [previous]) + items
        statement[key] = mapping


def merge_statements(statements: list[Any], more: list[Any]) -> None:
    """Add ``more`` to ``statements``; a statement with the ``Sid`` of one already there replaces it."""
    for statement in more:
        sid = statement.get("Sid") if isinstance(statement, dict) else None
        index = next(
            (i for i, old in enumerate(statements) if sid and isinstance(old, dict) and old.get("Sid") == sid), None
        )
        if index is None:
            statements.append(statement)
        else:
            statements[index] = statement


def marker(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        if isinstance(key, str) and key.startswith(("Fn::", "Ref")):
            return key
    return None


def interpolated_json(argument: list[Any]) -> Any:
    """A JSON document with ``${...}`` inside its strings, each string with one rebuilt as ``Fn::Sub``."""
    text, variables = argument
    names = list(variables)
    tokened = text
    for index, name in enumerate(names):
        tokened = tokened.replace("${" + name + "}", _PLACEHOLDER.format(index))
    try:
        document = json.loads(tokened.replace("${!", "${"))
    except ValueError:
        return None

    def rebuild(value: Any) -> Any:
        if isinstance(value, str) and _PLACEHOLDERS.search(value):
            whole = _PLACEHOLDERS.fullmatch(value)
            if whole is not None:
                return variables[names[int(whole.group(1))]]
            escaped = value.replace("${", "${!")
            used = {names[int(i)]: variables[names[int(i)]] for i in _PLACEHOLDERS.findall(escaped)}
            return {"Fn::Sub": [_PLACEHOLDERS.sub(lambda m: "${" + names[int(m.group(1))] + "}", escaped), used]}
        if isinstance(value, list):
            return [rebuild(item) for item in value]
        if isinstance(value, dict):
            return {key: rebuild(item) for key, item in value.items()}
        return value

    return rebuild(document)
