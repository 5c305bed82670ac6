"""What a trust policy may hold: JSON types (else PolicyError) and what IAM itself would refuse (pure).

Two levels. ``validate_document`` checks the JSON types every later step relies on (Statement a list
or object, Effect a string, Action strings...): a document failing it is not a trust policy at all.
``document_flaws`` lists what IAM's own validator refuses in a well-typed document (an Effect of
"Alow", a statement without Principal, a misspelt key...). Such a document is never judged safe nor
rewritten: what IAM would make of it is unknowable, and a fix IAM refuses helps no one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from chalicelib.domain.models import PolicyDoc

__all__ = ["Flaw", "PolicyError", "document_flaws", "validate_document"]


class PolicyError(ValueError):
    """The input is not a trust policy: not JSON, not an object, or a field of the wrong type."""


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_principal_item(value: Any) -> bool:
    # A dict is a template intrinsic such as {"Fn::Sub": "states.${AWS::Region}.amazonaws.com"}:
    # accepted here so that evaluation can report it as unresolved instead of as a broken document.
    return isinstance(value, str | dict)


def _is_condition_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | dict)


def _validate_principal(index: int, name: str, principal: Any) -> None:
    if isinstance(principal, str):
        if principal != "*":
            raise PolicyError(f'statement {index}: {name} must be "*" or an object, not the string {principal!r}')
        return
    if not isinstance(principal, dict):
        raise PolicyError(f'statement {index}: {name} must be "*" or an object, not {_json_type(principal)}')
    for kind, value in principal.items():
        if _is_principal_item(value):
            continue
        if isinstance(value, list) and all(_is_principal_item(item) for item in value):
            continue
        raise PolicyError(
            f"statement {index}: {name}.{kind} must be a string or a list of strings, not {_json_type(value)}"
        )


def _validate_condition(index: int, condition: Any) -> None:
    if not isinstance(condition, dict):
        raise PolicyError(
            f"statement {index}: Condition must be an object of operator blocks, not {_json_type(condition)}"
        )
    for operator, block in condition.items():
        if not isinstance(block, dict):
            raise PolicyError(
                f"statement {index}: Condition.{operator} must be an object of condition keys, not {_json_type(block)}"
            )
        for key, value in block.items():
            if _is_condition_scalar(value):
                continue
            if isinstance(value, list) and all(_is_condition_scalar(item) for item in value):
                continue
            raise PolicyError(
                f"statement {index}: Condition.{operator}.{key} must be a string, number, boolean "
                f"or a list of them, not {_json_type(value)}"
            )


def _validate_statement(index: int, statement: Any) -> None:
    if not isinstance(statement, dict):
        raise PolicyError(f"statement {index}: must be an object, not {_json_type(statement)}")
    if "Effect" not in statement:
        raise PolicyError(f"statement {index}: Effect is missing")
    if not isinstance(statement["Effect"], str):
        raise PolicyError(f"statement {index}: Effect must be a string, not {_json_type(statement['Effect'])}")
    if "Sid" in statement and not isinstance(statement["Sid"], str):
        raise PolicyError(f"statement {index}: Sid must be a string, not {_json_type(statement['Sid'])}")
    for name in ("Action", "NotAction"):
        if name in statement:
            value = statement[name]
            if not (isinstance(value, str) or _is_string_list(value)):
                raise PolicyError(
                    f"statement {index}: {name} must be a string or a list of strings, not {_json_type(value)}"
                )
    for name in ("Principal", "NotPrincipal"):
        if name in statement:
            _validate_principal(index, name, statement[name])
    if "Condition" in statement:
        _validate_condition(index, statement["Condition"])


def validate_document(document: Any) -> PolicyDoc:
    """Check the JSON types of a trust policy's fields; raise PolicyError naming what is wrong."""
    if not isinstance(document, dict):
        raise PolicyError(f"a trust policy must be a JSON object, not {_json_type(document)}")
    if "Statement" not in document:
        raise PolicyError("the policy has no Statement")
    statements = document["Statement"]
    if isinstance(statements, dict):
        _validate_statement(0, statements)
    elif isinstance(statements, list):
        for index, statement in enumerate(statements):
            _validate_statement(index, statement)
    else:
        raise PolicyError(f"Statement must be an object or a list of objects, not {_json_type(statements)}")
    return document


# --------------------------------------------------------------------------------------------------
# What IAM refuses in a well-typed trust policy

Flaw = tuple[int | None, str]
"""(statement index, or None for the whole document; one line saying what IAM would refuse)."""

_TOP_LEVEL_KEYS: Final = ("Version", "Id", "Statement")
_STATEMENT_KEYS: Final = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
# Resource and NotResource are statement keys, but IAM refuses them in a trust policy ("prohibited field").
_VALID_STATEMENT_KEYS: Final = _STATEMENT_KEYS - {"Resource", "NotResource"}
_FOLDED_STATEMENT_KEYS: Final = {key.lower(): key for key in _STATEMENT_KEYS}
_VERSIONS: Final = ("2012-10-17", "2008-10-17")
_PRINCIPAL_TYPES: Final = ("AWS", "Service", "Federated", "CanonicalUser")
_PRINCIPAL_TYPE_SET: Final = frozenset(_PRINCIPAL_TYPES)
# Condition operators (folded), without the IfExists suffix and the ForAllValues:/ForAnyValue: prefix.
_OPERATORS: Final = frozenset(
    {
        "stringequals",
        "stringnotequals",
        "stringequalsignorecase",
        "stringnotequalsignorecase",
        "stringlike",
        "stringnotlike",
        "numericequals",
        "numericnotequals",
        "numericlessthan",
        "numericlessthanequals",
        "numericgreaterthan",
        "numericgreaterthanequals",
        "dateequals",
        "datenotequals",
        "datelessthan",
        "datelessthanequals",
        "dategreaterthan",
        "dategreaterthanequals",
        "bool",
        "binaryequals",
        "ipaddress",
        "notipaddress",
        "arnequals",
        "arnlike",
        "arnnotequals",
        "arnnotlike",
        "null",
    }
)
_QUALIFIERS: Final = frozenset({"forallvalues", "foranyvalue"})


def _shown(value: Any) -> str:
    """A value from the document, quoted on one line and short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@lru_cache(maxsize=512)
def _known_operator(name: str) -> bool:
    folded = name.lower()
    qualifier, colon, base = folded.rpartition(":")
    if colon and qualifier not in _QUALIFIERS:
        return False
    if base.endswith("ifexists"):
        base = base.removesuffix("ifexists")
        if base == "null":
            return False
    return base in _OPERATORS


def _prefixed(name: str) -> bool:
    return name.find(":") > 0


def _unprefixed(names: list[str], what: str, example: str, *, star: bool) -> str:
    """The flaw of names without a service prefix ("sts:", "aws:"), which IAM refuses; ``star``: "*" is fine."""
    bad = [name for name in names if not (star and name == "*") and not _prefixed(name)]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{what} {_shown(bad[0])}{more} has no service prefix such as {example}"


def _key_flaws(statement: dict[str, Any]) -> list[str]:
    reasons: list[str] = []
    if not statement.keys() <= _VALID_STATEMENT_KEYS:
        for key in statement:
            if key in _VALID_STATEMENT_KEYS:
                continue
            if key in _STATEMENT_KEYS:
                reasons.append(f"{key} is not allowed in a trust policy")
                continue
            known = _FOLDED_STATEMENT_KEYS.get(key.lower())
            if known is not None:
                reasons.append(f"key {_shown(key)} is not {known} (statement keys are case-sensitive)")
            else:
                reasons.append(f"unknown key {_shown(key)}")
    for one, other in (("Action", "NotAction"), ("Principal", "NotPrincipal")):
        has_one, has_other = one in statement, other in statement
        if has_one == has_other:
            reasons.append(f"both {one} and {other}" if has_one else f"no {one} or {other}")
    return reasons


def _action_flaw(statement: dict[str, Any]) -> str | None:
    for key in ("Action", "NotAction"):
        value = statement.get(key)
        if value is None:
            continue
        names = [value] if isinstance(value, str) else value
        if not all(name == "*" or _prefixed(name) for name in names):
            return _unprefixed(names, "action", '"sts:"', star=True)
    return None


def _value_flaws(statement: dict[str, Any]) -> list[str]:
    reasons: list[str] = []
    effect = statement["Effect"]
    if effect not in ("Allow", "Deny") and effect.lower() not in ("allow", "deny"):
        reasons.append(f"Effect {_shown(effect)} is neither Allow nor Deny")
    action = _action_flaw(statement)
    if action is not None:
        reasons.append(action)
    for key in ("Principal", "NotPrincipal"):
        value = statement.get(key)
        if isinstance(value, dict) and not value.keys() <= _PRINCIPAL_TYPE_SET:
            reasons.extend(
                f"{key} type {_shown(kind)} is not one of {', '.join(_PRINCIPAL_TYPES)} (names are case-sensitive)"
                for kind in value
                if kind not in _PRINCIPAL_TYPE_SET
            )
    for operator, block in statement.get("Condition", {}).items():
        if not _known_operator(operator):
            reasons.append(f"condition operator {_shown(operator)} is not one IAM knows")
        if not all(map(_prefixed, block)):
            reasons.append(_unprefixed(list(block), "condition key", '"aws:"', star=False))
    sid = statement.get("Sid")
    if sid and not (sid.isascii() and sid.isalnum()):
        reasons.append(f"Sid {_shown(sid)} is not alphanumeric")
    return reasons


def document_flaws(document: PolicyDoc) -> tuple[Flaw, ...]:
    """What IAM's validator would refuse in a document ``validate_document`` accepted; empty when nothing.

    One flaw for the whole document (top-level keys, Version, Id) and one per statement, each a line.
    """
    flaws: list[Flaw] = []
    whole: list[str] = [f"unknown top-level key {_shown(key)}" for key in document if key not in _TOP_LEVEL_KEYS]
    if "Version" in document and document["Version"] not in _VERSIONS:
        whole.append(f"Version {_shown(document['Version'])} is not {' or '.join(_VERSIONS)}")
    if "Id" in document and not isinstance(document["Id"], str):
        whole.append("Id is not a string")
    if whole:
        flaws.append((None, _joined(whole)))
    statements = document["Statement"]
    sids: dict[str, int] = {}
    for index, statement in enumerate([statements] if isinstance(statements, dict) else statements):
        reasons = _key_flaws(statement) + _value_flaws(statement)
        sid = statement.get("Sid")
        if sid:
            if sid in sids:
                reasons.append(f"Sid {_shown(sid)} is already statement {sids[sid]}'s")
            else:
                sids[sid] = index
        if reasons:
            flaws.append((index, _joined(reasons)))
    return tuple(flaws)


def _joined(reasons: list[str]) -> str:
    shown = reasons[:4]
    more = f"; and {len(reasons) - 4} more" if len(reasons) > 4 else ""
    return "IAM would refuse this: " + "; ".join(shown) + more
