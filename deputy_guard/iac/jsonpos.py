"""JSON with line numbers: where each object and array starts, and which objects repeat a key.

The standard library's pure-Python scanner calls back for every object and array with its offset; swapping in
a ``parse_object`` and a ``parse_array`` that record that offset keeps ``json``'s own grammar and error
messages. It is slower than the C scanner, so only CloudFormation templates, whose roles need a line, are read this way.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from json import decoder, scanner
from typing import Any, Final

__all__ = ["LoadedJson", "load"]

# Public in the json package but missing from typeshed's stubs.
_py_make_scanner: Final[Callable[[Any], Any]] = scanner.py_make_scanner  # type: ignore[attr-defined]
_json_object: Final[Callable[..., tuple[Any, int]]] = decoder.JSONObject  # type: ignore[attr-defined]
_json_array: Final[Callable[..., tuple[Any, int]]] = decoder.JSONArray  # type: ignore[attr-defined]


class LoadedJson:
    """A decoded document plus the offset of every object and array in the text."""

    def __init__(self, data: Any, text: str, starts: dict[int, int], duplicated: set[int]) -> None:
        self.data = data
        self._text = text
        self._starts = starts
        self._duplicated = duplicated
        self._newlines: list[int] | None = None

    def _line(self, offset: int) -> int:
        if self._newlines is None:
            self._newlines = [index for index, char in enumerate(self._text) if char == "\n"]
        return bisect.bisect_left(self._newlines, offset) + 1

    def key_line(self, mapping: object, key: str) -> int | None:
        """The 1-based line where the value of ``key`` in ``mapping`` starts (its own object, else ``mapping``)."""
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        offset = self._starts.get(id(mapping[key]))
        if offset is None:
            offset = self._starts.get(id(mapping))
        return None if offset is None else self._line(offset)

    def has_duplicates(self, mapping: object) -> bool:
        """Whether ``mapping`` was written with the same key twice (``json`` keeps the last one silently)."""
        return id(mapping) in self._duplicated


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _PositionDecoder(json.JSONDecoder):
    def __init__(self) -> None:
        super().__init__(parse_constant=_reject_constant, object_pairs_hook=self._pairs)
        self.starts: dict[int, int] = {}
        self.duplicated: set[int] = set()
        self._pending_duplicate = False
        self.parse_object = self._parse_object
        self.parse_array = self._parse_array
        self.scan_once = _py_make_scanner(self)

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        self._pending_duplicate = len(result) != len(pairs)
        return result

    def _parse_object(self, s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        start = s_and_end[1] - 1
        self._pending_duplicate = False
        obj, end = _json_object(s_and_end, *args)
        self.starts[id(obj)] = start
        if self._pending_duplicate:
            self.duplicated.add(id(obj))
            self._pending_duplicate = False
        return obj, end

    def _parse_array(self, s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        # Arrays too: a Fn::ForEach loop is one, and the roles it makes are shown at its line.
        array, end = _json_array(s_and_end, *args)
        self.starts[id(array)] = s_and_end[1] - 1
        return array, end


def load(text: str) -> LoadedJson:
    """Decode ``text`` keeping object positions; raises ValueError (json's) for anything that is not JSON."""
    positions = _PositionDecoder()
    try:
        data = positions.decode(text)
    except RecursionError as exc:
        raise ValueError("the document is nested too deeply") from exc
    return LoadedJson(data, text, positions.starts, positions.duplicated)
