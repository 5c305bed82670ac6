"""JSON text in and out, faithfully: number literals as written, duplicate keys noticed (pure, no I/O).

Python's json module reads ``1.10`` as the float 1.1 and writes it back as ``1.1``, and keeps the last of
two equal keys in an object without a word. A trust policy is someone else's document: the fix must
write back every value it does not touch exactly as it was, and a document whose meaning depends on
which of two equal keys wins must be noticed, not silently resolved.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any, Final

__all__ = [
    "DuplicateKeysObject",
    "FloatLiteral",
    "IntLiteral",
    "JsonTextError",
    "loads",
    "number_text",
    "to_json",
]

# Python refuses to turn longer digit strings into ints (sys.int_info.default_max_str_digits is 4300).
_MAX_INT_DIGITS: Final = 4000


class JsonTextError(ValueError):
    """Valid JSON that cannot be held faithfully (a number out of range), or a JSON extension (NaN)."""


class FloatLiteral(float):
    """A JSON number as written (``1.10``, ``1e3``): compares and hashes as its float, renders as its text.

    Only numbers whose text differs from Python's own rendering get one; ``json.dumps`` still accepts
    it (as a float, writing Python's rendering), and ``to_json`` writes the original text.
    """

    text: str

    def __new__(cls, text: str) -> FloatLiteral:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[FloatLiteral], tuple[str]]:
        return (FloatLiteral, (self.text,))


class IntLiteral(int):
    """A JSON integer whose text is not Python's rendering of its value: ``-0``."""

    text: str

    def __new__(cls, text: str) -> IntLiteral:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[IntLiteral], tuple[str]]:
        return (IntLiteral, (self.text,))


class DuplicateKeysObject(dict[str, Any]):
    """A decoded JSON object in which some key appeared more than once (the last value kept, as json does).

    It is a dict, so code that only reads it works unchanged; ``duplicates`` names the repeated keys so
    that the engine can refuse to judge the document.
    """

    duplicates: tuple[str, ...]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    built = dict(pairs)
    if len(built) == len(pairs):
        return built
    marked = DuplicateKeysObject(built)
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for key, _ in pairs:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    marked.duplicates = tuple(repeated)
    return marked


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonTextError(f"the number {text[:40]} is out of range")
    return value if float.__repr__(value) == text else FloatLiteral(text)


def _int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise JsonTextError(f"a number has {len(text)} digits")
    return IntLiteral(text) if text == "-0" else int(text)


def _constant(name: str) -> Any:
    # NaN and Infinity are accepted by Python's json module but are not JSON, and IAM rejects them.
    raise JsonTextError(f"{name} is not a JSON value")


def loads(text: str) -> Any:
    """Decode JSON text keeping number literals and marking objects with duplicate keys.

    Raises JsonTextError for NaN/Infinity and numbers that cannot be held, ValueError for text that is
    not JSON, RecursionError for nesting deeper than the interpreter allows.
    """
    return json.loads(text, object_pairs_hook=_object, parse_float=_float, parse_int=_int, parse_constant=_constant)


def number_text(value: int | float) -> str:
    """A number as JSON text: its literal when it came from JSON text, else what ``json.dumps`` writes."""
    if isinstance(value, FloatLiteral | IntLiteral):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if math.isfinite(value):
        return float.__repr__(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return encode_basestring(key)
    if key is None:
        return '"null"'
    if isinstance(key, bool | int | float):
        return encode_basestring(number_text(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _write(value: Any, parts: list[str], indent: str | None, depth: int) -> None:
    if isinstance(value, str):
        parts.append(encode_basestring(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int | float):
        parts.append(number_text(value))
    elif isinstance(value, dict):
        if not value:
            parts.append("{}")
            return
        inner = "" if indent is None else "\n" + indent * (depth + 1)
        separator = ":" if indent is None else ": "
        parts.append("{")
        first = True
        for key, item in value.items():
            parts.append(inner if first else "," + inner)
            first = False
            parts.append(_key_text(key))
            parts.append(separator)
            _write(item, parts, indent, depth + 1)
        parts.append("}" if indent is None else "\n" + indent * depth + "}")
    elif isinstance(value, list | tuple):
        if not value:
            parts.append("[]")
            return
        inner = "" if indent is None else "\n" + indent * (depth + 1)
        parts.append("[")
        first = True
        for item in value:
            parts.append(inner if first else "," + inner)
            first = False
            _write(item, parts, indent, depth + 1)
        parts.append("]" if indent is None else "\n" + indent * depth + "]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(value: Any, indent: int | None = None) -> str:
    """``json.dumps(value, ensure_ascii=False)`` compact or indented, but with number literals as written."""
    parts: list[str] = []
    _write(value, parts, None if indent is None else " " * indent, 0)
    return "".join(parts)
