"""The work a call does, counted in function calls: the same count on a busy machine as on a quiet one.

Tests bound an algorithm by what it does, never by how long it took (time belongs in ``bench/``). Every
Python function entered (a generator resumed counts again) and every built-in called is one unit: a
backtracking or quadratic algorithm multiplies the count, whatever the machine is doing meanwhile.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
_ENTRIES = frozenset({"call", "c_call"})


def counted(function: Callable[[], T]) -> tuple[T, int]:
    """``function()``'s result and the function calls it made (in this thread)."""
    count = 0

    def profile(_frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal count
        if event in _ENTRIES:
            count += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = function()
    finally:
        sys.setprofile(previous)
    return result, count


def calls(function: Callable[[], Any]) -> int:
    """The function calls ``function()`` made."""
    return counted(function)[1]
