"""IAM wildcard matching: same answers as the regex it replaced, in work linear in the pattern and the text."""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.policy import iam_glob_match
from chalicelib.domain.wildcard import fold_case, wildcard_match
from tests.work import calls

PROPERTY_SETTINGS = settings(max_examples=2000, deadline=None)

# Letters that matter: plain and upper case, the characters Python's re folds onto ASCII letters (long s,
# dotless i, capital I with dot, Kelvin sign), ":" as in ARNs, and the two wildcards.
PATTERN_ALPHABET = "abAB:sSiIkK\u017f\u0131\u0130\u212a*?"
TEXT_ALPHABET = "abAB:sSiIkK*?"
patterns = st.text(alphabet=PATTERN_ALPHABET, max_size=10)
texts = st.text(alphabet=TEXT_ALPHABET, max_size=8)


def reference_match(pattern: str, text: str) -> bool:
    """The textbook recursive definition, memoised: slow and obviously right."""

    @cache
    def match(p: int, t: int) -> bool:
        if p == len(pattern):
            return t == len(text)
        if pattern[p] == "*":
            return match(p + 1, t) or (t < len(text) and match(p, t + 1))
        return t < len(text) and pattern[p] in ("?", text[t]) and match(p + 1, t + 1)

    return match(0, 0)


def regex_match(pattern: str, text: str, ignore_case: bool) -> bool:
    """What the engine did before: a regex built from the pattern (exponential on hostile patterns)."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == text.lower() if ignore_case else pattern == text
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    flags = (re.IGNORECASE if ignore_case else 0) | re.DOTALL
    return re.fullmatch("".join(parts), text, flags) is not None


# --- the same answers -----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(pattern=patterns, text=texts)
def test_matching_agrees_with_the_recursive_definition(pattern: str, text: str) -> None:
    assert wildcard_match(pattern, text) is reference_match(pattern, text)
    assert wildcard_match(fold_case(pattern), fold_case(text)) is reference_match(fold_case(pattern), fold_case(text))


@PROPERTY_SETTINGS
@given(pattern=patterns, text=texts, ignore_case=st.booleans())
def test_matching_agrees_with_the_regex_it_replaced(pattern: str, text: str, ignore_case: bool) -> None:
    # Given a pattern and a text of the shapes the engine matches (ASCII text, any pattern)
    # Then the answer is the old regex's, case rules included
    assert iam_glob_match(pattern, text, ignore_case=ignore_case) is regex_match(pattern, text, ignore_case)


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("", "", True),
        ("*", "", True),
        ("?", "", False),
        ("a*", "a", True),
        ("*a", "ba", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXcYb", False),
        ("ab*ba", "aba", False),
        ("*?*?*", "a", False),
        ("*?*?*", "ab", True),
        ("**a**", "bab", True),
        ("a?c", "a\nc", True),
        ("st*", "states", True),
        ("s?ates", "states", True),
        ("*es", "states", True),
        ("*x", "states", False),
    ],
)
def test_wildcards_follow_iam(pattern: str, text: str, matches: bool) -> None:
    assert wildcard_match(pattern, text) is matches


def test_case_folding_keeps_every_character_in_place() -> None:
    # Given every character whose lower case is special
    # Then folding maps each to exactly one character, so "?" keeps counting characters
    for code in range(0x110000):
        assert len(fold_case(chr(code))) == 1


def test_ignoring_case_means_what_re_ignorecase_meant_for_ascii_text() -> None:
    # Given every BMP character as a pattern character, and every printable ASCII character as text
    ascii_text = "".join(chr(code) for code in range(0x20, 0x7F))
    by_fold: dict[str, set[str]] = {}
    for found in ascii_text:
        by_fold.setdefault(fold_case(found), set()).add(found)
    for code in range(0x10000):
        char = chr(code)
        if char in "*?":
            continue
        # Then the ASCII characters it matches once folded are the ones the regex matched
        expected = set(re.compile(re.escape(char), re.IGNORECASE).findall(ascii_text))
        assert by_fold.get(fold_case(char), set()) == expected, hex(code)
    # And the matcher itself agrees, wildcard or not, on the characters where folding matters
    for char, text in (("\u017f", "S"), ("\u0131", "I"), ("\u0130", "i"), ("\u212a", "k"), ("\u00df", "s")):
        assert iam_glob_match(char + "*", text, ignore_case=True) is regex_match(char + "*", text, True)
        assert iam_glob_match(char + "?", text + "x", ignore_case=True) is regex_match(char + "?", text + "x", True)


# --- linear time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("sts:" + "*" * 20 + "TagSession", "sts:AssumeRole"),
        ("*" * 70 + "x", "states"),
        ("*?" * 1000 + "x", "sts:AssumeRole"),
        ("*a" * 2000 + "b", "a" * 14),
        ("?" * 5000, "states"),
        ("a*" * 5000, "a" * 5000),
    ],
)
def test_hostile_patterns_are_matched_at_once(pattern: str, text: str) -> None:
    # Given patterns on which a backtracking matcher takes seconds to ages
    # When matched, both case-sensitively and not
    work = calls(
        lambda: (iam_glob_match(pattern, text, ignore_case=True), iam_glob_match(pattern, text, ignore_case=False))
    )
    # Then the work is linear in what is matched (function calls counted, never time: a backtracking
    # matcher makes millions here)
    assert work <= 4 * (len(pattern) + len(text))


def test_matching_work_grows_linearly_with_the_pattern() -> None:
    # Given the same hostile shape at two sizes, on a text it matches (so no early exit skips the work)
    def counted(size: int) -> int:
        pattern, text = "sts:" + "*?" * size + "*x", "sts:" + "ab" * size + "x"
        assert iam_glob_match(pattern, text, ignore_case=True)
        return calls(lambda: iam_glob_match(pattern, text, ignore_case=True))

    # Then ten times the pattern costs about ten times as much, not exponentially more
    small, large = counted(200), counted(2_000)
    assert large <= 11 * small
