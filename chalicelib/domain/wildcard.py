"""IAM wildcard matching (``*`` any run of characters, ``?`` exactly one) without backtracking (pure).

A policy is attacker-controlled input: a regex built from ``sts:****...*x`` backtracks exponentially, so
a few hundred characters could stall an evaluation for minutes. Here the pattern is cut at its stars;
the first piece must start the text, the last must end it, and each piece between them is placed at its
leftmost fit after the previous one. Leftmost placement is always safe for star-separated pieces (a later
fit leaves less text for the rest), so nothing is ever retried: the cost is linear in the pattern plus,
for pieces holding ``?``, a naive search bounded by the text's length times the piece's.

Case-insensitive matching means what Python's ``re.IGNORECASE`` meant for the regexes this replaces:
simple lower case, plus the few letters ``re`` also treats as equal (long s and s, dotless i and i, Greek
and Cyrillic variant forms). The engine only ever matches against ASCII text (``sts:AssumeRole``, ``states``),
for which that is exact; ``tests/unit/test_wildcard.py`` checks it against ``re`` for every BMP character.
"""

from __future__ import annotations

from typing import Final

__all__ = ["fold_case", "wildcard_match"]

# Letters that Python's re.IGNORECASE also treated as equal after lower-casing (re._casefix), each class
# mapped to its first member.
_CASE_CLASSES: Final = (
    "\u0069\u0131",
    "\u0073\u017f",
    "\u00b5\u03bc",
    "\u0345\u03b9\u1fbe",
    "\u0390\u1fd3",
    "\u03b0\u1fe3",
    "\u03b2\u03d0",
    "\u03b5\u03f5",
    "\u03b8\u03d1",
    "\u03ba\u03f0",
    "\u03c0\u03d6",
    "\u03c1\u03f1",
    "\u03c2\u03c3",
    "\u03c6\u03d5",
    "\u0432\u1c80",
    "\u0434\u1c81",
    "\u043e\u1c82",
    "\u0441\u1c83",
    "\u0442\u1c84\u1c85",
    "\u044a\u1c86",
    "\u0463\u1c87",
    "\u1c88\ua64b",
    "\u1e61\u1e9b",
    "\ufb05\ufb06",
)
_FOLD_TABLE: Final = {ord(member): group[0] for group in _CASE_CLASSES for member in group[1:]}


def fold_case(text: str) -> str:
    """Fold ``text`` for case-insensitive matching, one character for one (``*`` and ``?`` unchanged)."""
    # str.lower() maps U+0130 (capital I with dot) to two characters; its simple lower case is "i".
    return text.replace("\u0130", "i").lower().translate(_FOLD_TABLE)


def _fits_at(piece: str, text: str, start: int) -> bool:
    """Whether ``piece`` (no ``*``, maybe ``?``) matches ``text`` at ``start``; the caller checks the length."""
    if "?" not in piece:
        return text.startswith(piece, start)
    return all(char == "?" or char == text[start + offset] for offset, char in enumerate(piece))


def _leftmost(piece: str, text: str, start: int, stop: int) -> int:
    """The first index ``i >= start`` with ``piece`` matching ``text[i:i+len(piece)]`` inside ``stop``; -1 if none."""
    if "?" not in piece:
        return text.find(piece, start, stop)
    last = stop - len(piece)
    index = start
    while index <= last:
        if _fits_at(piece, text, index):
            return index
        index += 1
    return -1


def wildcard_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` exactly (case-sensitive); fold both first to ignore case."""
    if "*" not in pattern:
        return len(pattern) == len(text) and _fits_at(pattern, text, 0)
    pieces = pattern.split("*")
    first, last = pieces[0], pieces[-1]
    end = len(text) - len(last)
    if len(first) > end or not _fits_at(first, text, 0) or not _fits_at(last, text, end):
        return False
    position = len(first)
    for piece in pieces[1:-1]:
        if not piece:
            continue
        found = _leftmost(piece, text, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True
