"""chalicelib.domain.jsontext: JSON read with its number literals and repeated keys, written back faithfully."""

from __future__ import annotations

import copy
import json
import math
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.jsontext import DuplicateKeysObject, FloatLiteral, IntLiteral, JsonTextError, loads, to_json
from chalicelib.domain.policy import PolicyError, decode_document, parse_policy, read_policy, to_pretty_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=15,
)


@settings(max_examples=500, deadline=None)
@given(value=json_values)
def test_plain_data_is_written_exactly_as_json_dumps_writes_it(value: Any) -> None:
    assert to_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert to_json(value, indent=2) == json.dumps(value, indent=2, ensure_ascii=False)


@settings(max_examples=500, deadline=None)
@given(value=json_values)
def test_text_read_and_written_back_is_the_same_text(value: Any) -> None:
    # Given JSON text as json.dumps writes it
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # When read keeping literals and written again
    # Then nothing changed
    assert to_json(loads(text)) == text


@pytest.mark.parametrize(
    "literal", ["1.10", "1e3", "1E3", "1e+3", "-0", "-0.0", "0.50", "2.5E-3", "123456789012345678901234567890", "1.0"]
)
def test_number_literals_come_back_as_written(literal: str) -> None:
    text = '{"n":[' + literal + "]}"
    decoded = loads(text)
    assert to_json(decoded) == text
    assert decoded["n"][0] == json.loads(literal)


def test_only_numbers_python_would_write_differently_carry_their_text() -> None:
    decoded = loads("[1.5, 1.50, 7, -0]")
    assert [type(value) for value in decoded] == [float, FloatLiteral, int, IntLiteral]


def test_literals_behave_as_numbers_and_survive_copies() -> None:
    value = loads("[1.10]")[0]
    assert value == 1.1 and hash(value) == hash(1.1) and math.isclose(value * 2, 2.2)
    assert json.dumps([value]) == "[1.1]"  # json.dumps writes Python's rendering; to_json the literal
    for copied in (copy.deepcopy(value), pickle.loads(pickle.dumps(value)), copy.copy(value)):
        assert to_json([copied]) == "[1.10]"


def test_repeated_keys_are_marked_with_their_names() -> None:
    decoded = loads('{"a": 1, "b": {"c": 1, "c": 2, "d": 0, "d": 1}, "a": 3}')
    assert isinstance(decoded, DuplicateKeysObject) and decoded.duplicates == ("a",)
    assert isinstance(decoded["b"], DuplicateKeysObject) and decoded["b"].duplicates == ("c", "d")
    assert decoded == {"a": 3, "b": {"c": 2, "d": 1}}  # the last value wins, as with json.loads
    assert type(loads('{"a": 1}')) is dict


@pytest.mark.parametrize(
    ("text", "message"), [("[NaN]", "NaN"), ("[1e400]", "out of range"), ("[" + "9" * 4001 + "]", "digits")]
)
def test_numbers_that_cannot_be_held_are_refused(text: str, message: str) -> None:
    with pytest.raises(JsonTextError, match=message):
        loads(text)


# --- through the policy API -----------------------------------------------------------------------


def test_decode_document_keeps_literals_and_marks_repeated_keys_in_url_encoded_text() -> None:
    decoded = decode_document("%7B%22a%22%3A1.10%2C%22a%22%3A2%7D")
    assert isinstance(decoded, DuplicateKeysObject) and to_json(decoded) == '{"a":2}'
    assert to_json(decode_document("%7B%22a%22%3A1.10%7D")) == '{"a":1.10}'


def test_reading_a_policy_reports_what_the_copy_noticed() -> None:
    read = read_policy('{"Statement": [], "Id": "\\ud800", "Version": "2012-10-17", "Version": "2012-10-17"}')
    assert read.duplicate_keys == ("Version",)
    assert read.lone_surrogates is True
    assert type(read.document) is dict
    assert read_policy('{"Statement": [], "Id": "\\ud83d\\ude80"}').lone_surrogates is False
    assert read_policy('{"Statement": [], "X": 1.10}').number_literals is True


@pytest.mark.parametrize("depth", [64, 65, 1_000])
def test_parse_refuses_documents_nested_past_the_limit(depth: int) -> None:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    document = {"Statement": [], "X": value}  # the document itself is the first level
    if depth <= 64:
        assert parse_policy(document) == document
    else:
        with pytest.raises(PolicyError, match="nested too deeply"):
            parse_policy(document)


def test_parse_refuses_an_int_too_large_to_print() -> None:
    with pytest.raises(PolicyError, match="too large"):
        parse_policy({"Statement": [], "X": 10**5000})


def test_pretty_json_keeps_literals_for_the_diff() -> None:
    assert to_pretty_json(decode_document('{"a": [1.10, -0]}')) == '{\n  "a": [\n    1.10,\n    -0\n  ]\n}'
