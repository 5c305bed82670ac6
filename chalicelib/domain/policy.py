"""Trust-policy documents: parse, validate, normalise for reading, and render (pure, no I/O).

The engine reads the normalised view built here; it never writes that view back out. A fix edits a
copy of the document as the owner wrote it, so string-vs-list shapes, key order and unrelated fields
survive byte for byte.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal
from urllib.parse import unquote

from chalicelib.domain.models import PolicyDoc

__all__ = [
    "ConditionEntry",
    "NormalStatement",
    "PolicyError",
    "ServiceKind",
    "clone_json",
    "decode_document",
    "has_states_principal",
    "iam_glob_match",
    "normalise_policy",
    "parse_policy",
    "render_diff",
    "scalar_text",
    "service_kind",
    "statement_list",
    "to_compact_json",
    "to_pretty_json",
]


class PolicyError(ValueError):
    """The input is not a trust policy: not JSON, not an object, or a field of the wrong type."""


# --------------------------------------------------------------------------------------------------
# Decoding and validation


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are accepted by Python's json module but are not JSON, and IAM rejects them.
    raise PolicyError(f"not JSON: {name} is not a JSON value")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def decode_document(text: str) -> Any:
    """Decode a JSON string, or a URL-encoded JSON string as IAM's GetRole/ListRoles return it."""
    try:
        return _loads(text)
    except PolicyError:
        raise
    except RecursionError as exc:
        raise PolicyError("not JSON: the document is nested too deeply") from exc
    except ValueError as first:
        # IAM's query API returns policies percent-encoded ("%7B%22Version..."); plain JSON never
        # needs that, so only a failed plain parse is worth a second, decoded attempt.
        if "%" not in text:
            raise PolicyError(f"not JSON: {_one_line(str(first))}") from first
        try:
            return _loads(unquote(text))
        except PolicyError:
            raise
        except RecursionError as exc:
            raise PolicyError("not JSON: the document is nested too deeply") from exc
        except ValueError as second:
            raise PolicyError(f"not JSON (nor URL-encoded JSON): {_one_line(str(second))}") from second


def _one_line(text: str) -> str:
    return " ".join(text.split())


_SCALAR_TYPES: Final = frozenset({str, int, bool, type(None)})


def _copy_checked(value: Any) -> Any:
    """Deep-copy caller data into plain JSON types, refusing anything JSON cannot hold."""
    kind = type(value)
    # Exact-type checks first: this runs on every event and sweep, and plain dicts and lists dominate.
    if kind in _SCALAR_TYPES:
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise PolicyError(f"not JSON: object key {key!r} is not a string")
            out[key] = _copy_checked(item)
        return out
    if kind is list:
        return [_copy_checked(item) for item in value]
    return _copy_unusual(value)


def _copy_unusual(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError("not JSON: NaN and Infinity are not JSON values")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyError(f"not JSON: object key {key!r} is not a string")
            out[str(key)] = _copy_checked(item)
        return out
    if isinstance(value, list | tuple):
        return [_copy_checked(item) for item in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    raise PolicyError(f"not JSON: a value of type {type(value).__name__} is not JSON data")


def clone_json(value: Any) -> Any:
    """Deep-copy JSON data already known to be plain dicts, lists and scalars (fast path)."""
    kind = type(value)
    if kind is dict:
        return {key: clone_json(item) for key, item in value.items()}
    if kind is list:
        return [clone_json(item) for item in value]
    return value


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


def _validate(document: Any) -> PolicyDoc:
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


def _parse(document: object) -> PolicyDoc:
    if isinstance(document, str):
        decoded = decode_document(document)
    elif isinstance(document, Mapping):
        try:
            decoded = _copy_checked(document)
        except RecursionError as exc:
            raise PolicyError("not JSON: the document is nested too deeply") from exc
    else:
        raise PolicyError(f"a trust policy must be a JSON object or string, not {type(document).__name__}")
    return _validate(decoded)


def parse_policy(document: Mapping[str, Any] | str) -> PolicyDoc:
    """Validate a trust policy (dict, JSON string or URL-encoded JSON string) and return a deep copy.

    Raises PolicyError, with a one-line message naming the statement index, for anything that is not
    a trust policy.
    """
    return _parse(document)


# --------------------------------------------------------------------------------------------------
# Normalised, read-only view


@dataclass(frozen=True, slots=True)
class ConditionEntry:
    """One condition key under one operator block; names kept as written, plus folded for lookup."""

    operator: str
    key: str
    operator_folded: str
    key_folded: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class NormalStatement:
    """One statement with Action/Principal values as tuples and condition names folded to lower case."""

    index: int
    allow: bool
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    principal_star: bool
    # (principal type folded to lower case, values); a tuple of pairs keeps duplicate spellings apart.
    principals: tuple[tuple[str, tuple[Any, ...]], ...]
    not_principal: bool
    conditions: tuple[ConditionEntry, ...]


def statement_list(document: PolicyDoc) -> list[Any]:
    """The document's statements as a list (a view onto the document, not a copy)."""
    statements = document["Statement"]
    if isinstance(statements, dict):
        return [statements]
    listed: list[Any] = statements
    return listed


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _normalise_statement(index: int, statement: dict[str, Any]) -> NormalStatement:
    actions = statement.get("Action")
    not_actions = statement.get("NotAction")
    principal = statement.get("Principal")
    principals: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    if isinstance(principal, dict):
        principals = tuple((kind.lower(), _as_tuple(value)) for kind, value in principal.items())
    conditions: list[ConditionEntry] = []
    condition = statement.get("Condition")
    if condition:
        for operator, block in condition.items():
            operator_folded = operator.lower()
            for key, value in block.items():
                conditions.append(ConditionEntry(operator, key, operator_folded, key.lower(), _as_tuple(value)))
    return NormalStatement(
        index=index,
        allow=statement["Effect"].lower() == "allow",
        actions=None if actions is None else _as_tuple(actions),
        not_actions=None if not_actions is None else _as_tuple(not_actions),
        principal_star=principal == "*",
        principals=principals,
        not_principal="NotPrincipal" in statement,
        conditions=tuple(conditions),
    )


def normalise_policy(document: PolicyDoc) -> tuple[NormalStatement, ...]:
    """Build the read-only normalised view of a document that parse_policy has validated."""
    return tuple(_normalise_statement(index, st) for index, st in enumerate(statement_list(document)))


# --------------------------------------------------------------------------------------------------
# Matching helpers shared by the engine


@lru_cache(maxsize=2048)
def _glob_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def iam_glob_match(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """Match text against an IAM wildcard pattern (``*`` any run of characters, ``?`` one character)."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == text.lower() if ignore_case else pattern == text
    return _glob_regex(pattern, ignore_case).fullmatch(text) is not None


def scalar_text(value: Any) -> str | None:
    """A condition value as IAM compares it (numbers by their decimal text); None for a template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


ServiceKind = Literal["states", "template", "other"]

# Global and regional Step Functions principals, in the commercial and China partitions.
_STATES_SERVICE: Final = re.compile(r"states(?:\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?", re.IGNORECASE)
_URL_SUFFIX: Final = re.compile(r"\$\{AWS::URLSuffix\}", re.IGNORECASE)
_TEMPLATE_VARIABLE: Final = re.compile(r"\$\{[^}]*\}")
_FIRST_LABEL: Final = re.compile(r"([^.]*)\.")


def _template_text(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (function, argument), *_ = value.items()
    if function == "Fn::Sub":
        if isinstance(argument, str):
            return argument
        if isinstance(argument, list) and argument and isinstance(argument[0], str):
            return argument[0]
    if (
        function == "Fn::Join"
        and isinstance(argument, list)
        and len(argument) == 2
        and isinstance(argument[0], str)
        and isinstance(argument[1], list)
    ):
        return argument[0].join(part if isinstance(part, str) else "${?}" for part in argument[1])
    return None


def service_kind(value: Any) -> ServiceKind:
    """Classify a Principal.Service value: Step Functions, a template that may render to it, or other."""
    if isinstance(value, str) and "${" not in value:
        return "states" if _STATES_SERVICE.fullmatch(value) else "other"
    text = value if isinstance(value, str) else _template_text(value)
    if text is None:
        # An intrinsic we cannot read (Ref, Fn::If...) could render to anything, Step Functions included.
        return "template"
    rendered = _TEMPLATE_VARIABLE.sub("region", _URL_SUFFIX.sub("amazonaws.com", text))
    if _STATES_SERVICE.fullmatch(rendered):
        return "template"
    label = _FIRST_LABEL.match(text)
    if label is None or "${" in label.group(1) or label.group(1).lower() == "states":
        return "template"
    return "other"


def has_states_principal(document: object) -> bool:
    """Whether any statement could name Step Functions; True for junk, so the caller re-reads the role.

    ``"*"``, ``{"AWS": "*"}`` and NotPrincipal count, because they include Step Functions.
    """
    try:
        parsed = _parse(document)
    except PolicyError:
        return True
    for statement in normalise_policy(parsed):
        if statement.principal_star or statement.not_principal:
            return True
        for kind, values in statement.principals:
            for value in values:
                if value == "*":
                    return True
                if kind == "service" and service_kind(value) != "other":
                    return True
    return False


# --------------------------------------------------------------------------------------------------
# Rendering


def to_compact_json(document: Any) -> str:
    """The document without whitespace, in its own key order: what IAM counts against the size quota."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def to_pretty_json(document: Any) -> str:
    """The document indented by two spaces, in its own key order."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def render_diff(before: Any, after: Any, from_name: str = "before", to_name: str = "after") -> str:
    """A unified diff of the two documents' pretty JSON; empty when they are equal."""
    lines = difflib.unified_diff(
        to_pretty_json(before).splitlines(),
        to_pretty_json(after).splitlines(),
        fromfile=from_name,
        tofile=to_name,
        lineterm="",
    )
    text = "\n".join(lines)
    return text + "\n" if text else ""
