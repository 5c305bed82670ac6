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
from typing import Any, Final, Literal
from urllib.parse import unquote

from chalicelib.domain import jsontext
from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry, entry_for_principal
from chalicelib.domain.grammar import PolicyError, document_flaws, validate_document
from chalicelib.domain.jsontext import DuplicateKeysObject, FloatLiteral, IntLiteral, JsonTextError, number_text
from chalicelib.domain.models import PolicyDoc
from chalicelib.domain.wildcard import fold_case, wildcard_match

__all__ = [
    "MAX_DEPTH",
    "ConditionEntry",
    "NormalStatement",
    "ParsedPolicy",
    "PolicyError",
    "ServiceKind",
    "clone_json",
    "compact_size",
    "decode_document",
    "has_selected_principal",
    "has_states_principal",
    "iam_glob_match",
    "normalise_policy",
    "parse_policy",
    "read_policy",
    "render_diff",
    "scalar_text",
    "service_kind",
    "service_match",
    "statement_list",
    "to_compact_json",
    "to_pretty_json",
]


# --------------------------------------------------------------------------------------------------
# Decoding and validation


def _loads(text: str) -> Any:
    try:
        return jsontext.loads(text)
    except JsonTextError as exc:
        raise PolicyError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise PolicyError("not JSON: the document is nested too deeply") from exc


def decode_document(text: str) -> Any:
    """Decode a JSON string, or a URL-encoded JSON string as IAM's GetRole/ListRoles return it.

    Number literals keep their text (``1.10`` stays ``1.10`` when written back) and an object with a
    repeated key comes back as a ``DuplicateKeysObject``, which the engine refuses to judge.
    """
    try:
        return _loads(text)
    except PolicyError:
        raise
    except ValueError as first:
        # IAM's query API returns policies percent-encoded ("%7B%22Version..."); plain JSON never
        # needs that, so only a failed plain parse is worth a second, decoded attempt.
        if "%" not in text:
            raise PolicyError(f"not JSON: {_one_line(str(first))}") from first
        try:
            return _loads(unquote(text))
        except PolicyError:
            raise
        except ValueError as second:
            raise PolicyError(f"not JSON (nor URL-encoded JSON): {_one_line(str(second))}") from second


def _one_line(text: str) -> str:
    return " ".join(text.split())


# IAM's documents nest about seven levels deep, templates a few more; anything far deeper is an attack on
# the recursion limit, refused here so that no later step (copy, fix, render) can hit it.
MAX_DEPTH: Final = 64
_NESTED_TOO_DEEPLY: Final = "not JSON: the document is nested too deeply"
# Python refuses to print ints of more than 4,300 digits; no policy holds one.
_MAX_INT_BITS: Final = 13_000
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_SCALAR_TYPES: Final = frozenset({bool, type(None)})


class _Reading:
    """What the copy noticed on its way through the document."""

    __slots__ = ("duplicates", "number_literals", "surrogates")

    def __init__(self) -> None:
        self.duplicates: dict[str, None] = {}
        self.number_literals = False
        self.surrogates = False

    def text(self, value: str) -> str:
        """``value``, noting a lone surrogate in it; callers skip ASCII text, the common case, themselves."""
        if _SURROGATE.search(value):
            self.surrogates = True
        return value


def _checked_int(value: int) -> int:
    if value.bit_length() > _MAX_INT_BITS:
        raise PolicyError("not JSON: a number is too large to hold")
    return value


def _copy_checked(value: Any, depth: int, reading: _Reading) -> Any:
    """Deep-copy caller data into plain JSON types, refusing anything JSON cannot hold."""
    kind = type(value)
    # Exact-type checks first: this runs on every event and sweep, and plain dicts and lists dominate.
    if kind is str:
        return value if value.isascii() else reading.text(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is int:
        return _checked_int(value)
    if depth >= MAX_DEPTH:
        raise PolicyError(_NESTED_TOO_DEEPLY)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise PolicyError(f"not JSON: object key {key!r} is not a string")
            out[key if key.isascii() else reading.text(key)] = _copy_checked(item, depth + 1, reading)
        return out
    if kind is list:
        return [_copy_checked(item, depth + 1, reading) for item in value]
    return _copy_unusual(value, depth, reading)


def _copy_unusual(value: Any, depth: int, reading: _Reading) -> Any:
    if isinstance(value, FloatLiteral | IntLiteral):
        reading.number_literals = True
        return value  # immutable, and it carries the number's text
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError("not JSON: NaN and Infinity are not JSON values")
        return float(value)
    if isinstance(value, DuplicateKeysObject):
        reading.duplicates.update(dict.fromkeys(value.duplicates))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyError(f"not JSON: object key {key!r} is not a string")
            out[reading.text(str(key))] = _copy_checked(item, depth + 1, reading)
        return out
    if isinstance(value, list | tuple):
        return [_copy_checked(item, depth + 1, reading) for item in value]
    if isinstance(value, str):
        return reading.text(str(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _checked_int(int(value))
    raise PolicyError(f"not JSON: a value of type {type(value).__name__} is not JSON data")


def clone_json(value: Any) -> Any:
    """Deep-copy JSON data already known to be plain dicts, lists and scalars (fast path)."""
    kind = type(value)
    if kind is dict:
        return {key: clone_json(item) for key, item in value.items()}
    if kind is list:
        return [clone_json(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class ParsedPolicy:
    """A validated copy of a trust policy, with what the copy noticed that IAM may not accept."""

    document: PolicyDoc
    # Keys repeated within one JSON object (the copy keeps the last value, as json does).
    duplicate_keys: tuple[str, ...] = ()
    # Whether some string holds an unpaired UTF-16 surrogate ("\ud800"), which is not Unicode text.
    lone_surrogates: bool = False
    # Whether some number keeps its JSON text (1.10, 1e3, -0), which only to_compact_json writes back.
    number_literals: bool = False


def read_policy(document: object) -> ParsedPolicy:
    """Validate a trust policy (dict, JSON string or URL-encoded JSON string) into a deep copy.

    Raises PolicyError, with a one-line message naming the statement index, for anything that is not
    a trust policy (not JSON, the wrong types, nested deeper than MAX_DEPTH).
    """
    reading = _Reading()
    if isinstance(document, str):
        decoded = decode_document(document)
    elif isinstance(document, Mapping):
        decoded = document
    else:
        raise PolicyError(f"a trust policy must be a JSON object or string, not {type(document).__name__}")
    try:
        copied = _copy_checked(decoded, 0, reading)
    except RecursionError as exc:
        raise PolicyError(_NESTED_TOO_DEEPLY) from exc
    return ParsedPolicy(
        validate_document(copied), tuple(reading.duplicates), reading.surrogates, reading.number_literals
    )


def parse_policy(document: Mapping[str, Any] | str) -> PolicyDoc:
    """Validate a trust policy (dict, JSON string or URL-encoded JSON string) and return a deep copy.

    Raises PolicyError, with a one-line message naming the statement index, for anything that is not
    a trust policy. Repeated keys are not an error here (the last value is kept); ``evaluate`` reports them.
    """
    return read_policy(document).document


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


def iam_glob_match(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """Match text against an IAM wildcard pattern (``*`` any run of characters, ``?`` one character).

    Linear in the pattern's length whatever it holds (no regex, no backtracking): see ``wildcard``.
    """
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == text.lower() if ignore_case else pattern == text
    if ignore_case:
        return wildcard_match(fold_case(pattern), fold_case(text))
    return wildcard_match(pattern, text)


def scalar_text(value: Any) -> str | None:
    """A condition value as IAM compares it (numbers by their decimal text); None for a template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return None


ServiceKind = Literal["states", "template", "other"]
TEMPLATE: Final = "template"

_URL_SUFFIX: Final = re.compile(r"\$\{AWS::URLSuffix\}", re.IGNORECASE)
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


def _fill_variables(text: str, value: str) -> str:
    """Replace each ``${...}`` with ``value``, in one pass (a regex would rescan for every unclosed ``${``)."""
    parts: list[str] = []
    position = 0
    while (start := text.find("${", position)) >= 0 and (end := text.find("}", start + 2)) >= 0:
        parts.append(text[position:start])
        parts.append(value)
        position = end + 1
    parts.append(text[position:])
    return "".join(parts)


def service_match(value: Any, selection: tuple[Entry, ...] = DEFAULT_SERVICES) -> Entry | Literal["template"] | None:
    """The selected catalogue entry a Principal.Service value names, ``"template"`` when it may render to one."""
    if isinstance(value, str) and "${" not in value:
        return entry_for_principal(value, selection)
    text = value if isinstance(value, str) else _template_text(value)
    if text is None:
        # An intrinsic we cannot read (Ref, Fn::If...) could render to anything, a selected service included.
        return TEMPLATE
    rendered = _fill_variables(_URL_SUFFIX.sub("amazonaws.com", text), "region")
    if entry_for_principal(rendered, selection) is not None:
        return TEMPLATE
    label = _FIRST_LABEL.match(text)
    if label is None or "${" in label.group(1) or any(label.group(1).lower() == e.name for e in selection):
        return TEMPLATE
    return None


def service_kind(value: Any) -> ServiceKind:
    """Classify a Principal.Service value: Step Functions, a template that may render to it, or other."""
    found = service_match(value)
    if found is None:
        return "other"
    return "template" if found == TEMPLATE else "states"


def has_selected_principal(document: object, selection: tuple[Entry, ...] = DEFAULT_SERVICES) -> bool:
    """Whether any statement could name a selected service; True for junk, so the caller re-reads the role.

    ``"*"``, ``{"AWS": "*"}`` and NotPrincipal count, because they include every service. So do documents
    the engine refuses to judge (repeated keys, lone surrogates, anything IAM would refuse): which
    principal they name is not certain.
    """
    try:
        read = read_policy(document)
    except PolicyError:
        return True
    if read.duplicate_keys or read.lone_surrogates or document_flaws(read.document):
        return True
    for statement in normalise_policy(read.document):
        if statement.principal_star or statement.not_principal:
            return True
        for kind, values in statement.principals:
            for value in values:
                if value == "*":
                    return True
                if kind == "service" and service_match(value, selection) is not None:
                    return True
    return False


def has_states_principal(document: object) -> bool:
    """Whether any statement could name Step Functions (the default selection); see has_selected_principal."""
    return has_selected_principal(document)


# --------------------------------------------------------------------------------------------------
# Rendering


def to_compact_json(document: Any) -> str:
    """The document without whitespace, in its own key order: what IAM counts against the size quota.

    Number literals read from JSON text are written as they were (``1.10``, ``1e3``, ``-0``).
    """
    return jsontext.to_json(document)


def compact_size(document: Any, *, number_literals: bool = True) -> int:
    """``len(to_compact_json(document))``; by the C encoder when the caller knows no number keeps its text."""
    if number_literals:
        return len(to_compact_json(document))
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False))


def to_pretty_json(document: Any) -> str:
    """The document indented by two spaces, in its own key order, number literals as written."""
    return jsontext.to_json(document, indent=2)


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
