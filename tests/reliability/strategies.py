"""Hypothesis strategies for hostile input: EventBridge events, trust policies, REST bodies and names.

Events start from the real-shaped fixtures in tests/fixtures/events and are then damaged: fields
deleted, values replaced by wrong types, huge strings or odd Unicode, role names an attacker might try.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.world import ACCOUNT

EVENTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "events"
FIXTURE_EVENTS: list[dict[str, Any]] = [json.loads(p.read_text()) for p in sorted(EVENTS_DIR.glob("*.json"))]

HUGE = "A" * 200_000
DEEP_JSON = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT_JSON = '{"a":' * 20_000 + "1" + "}" * 20_000

# Names an attacker (or a broken producer) might put where a role name goes.
odd_role_names = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "order-pipeline-sfn\n",
            "order-pipeline-sfn\x00",
            "rôle",
            "\uff4f\uff52\uff44\uff45\uff52",
            "١٢٣",
            "a" * 65,
            "../../etc/passwd",
            "order-pipeline-sfn/../admin",
            "arn:aws:iam::111122223333:role/order-pipeline-sfn",
            "*",
            "order-*",
            "%2e%2e",
            "deputy-guard-prod",
            "\udcff",
        ]
    ),
    st.text(max_size=70),
    st.from_regex(r"[A-Za-z0-9+=,.@_-]{1,64}", fullmatch=True),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
# Wrong types, huge and deep values: what a hostile or broken producer sends where a field should be.
junk = st.one_of(
    json_values,
    st.sampled_from([HUGE, DEEP_JSON, DEEP_OBJECT_JSON, float("nan"), float("inf"), 10**400, [HUGE] * 3]),
    odd_role_names,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from _paths(child, (*prefix, index))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def damaged_events(draw: st.DrawFn) -> Any:
    """A fixture event with a few fields deleted or replaced, sometimes a hostile role name or document."""
    event = copy.deepcopy(draw(st.sampled_from(FIXTURE_EVENTS)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        paths = list(_paths(event))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(event, path)
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(junk))  # never share a drawn value between events
    detail = event.get("detail")
    request = detail.get("requestParameters") if isinstance(detail, dict) else None
    if isinstance(request, dict):
        if draw(st.booleans()):
            request["roleName"] = draw(odd_role_names)
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            field = "policyDocument" if "policyDocument" in request else "assumeRolePolicyDocument"
            request[field] = copy.deepcopy(draw(st.one_of(st.sampled_from([HUGE, DEEP_JSON, DEEP_OBJECT_JSON]), junk)))
    return event


events = st.one_of(damaged_events(), damaged_events(), damaged_events(), json_values)


# --- trust policies -----------------------------------------------------------------------------------

STATES = {"Service": "states.amazonaws.com"}


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def hostile_policies(draw: st.DrawFn) -> Any:
    """Trust policies that are deep, enormous, or of unexpected types, in the shapes the bot receives."""
    size = draw(st.sampled_from([1, 10, 500, 3000]))
    depth = draw(st.sampled_from([1, 50, 900]))  # as values; deeper ones come as text (choice 7)
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": STATES, "Action": "sts:AssumeRole"}
    choice = draw(st.integers(min_value=0, max_value=10))
    if choice == 0:
        document: Any = {"Version": "2012-10-17", "Statement": nested(depth, statement)}
    elif choice == 1:
        document = {"Version": "2012-10-17", "Statement": [copy.deepcopy(statement) for _ in range(size)]}
    elif choice == 2:
        services = ["states.amazonaws.com"] + [f"svc{i}.amazonaws.com" for i in range(size)]
        document = {"Statement": [{**statement, "Principal": {"Service": services}}]}
    elif choice == 3:
        values = [ACCOUNT] * size + [draw(json_scalars)]
        document = {"Statement": [{**statement, "Condition": {"StringEquals": {"aws:SourceAccount": values}}}]}
    elif choice == 4:
        document = {
            "Statement": [{**statement, "Condition": {"StringEquals": {"aws:SourceAccount": nested(depth, ACCOUNT)}}}]
        }
    elif choice == 5:
        key = draw(st.sampled_from(["Effect", "Principal", "Action", "Condition", "Sid", "NotPrincipal"]))
        document = {"Statement": [{**statement, key: draw(junk)}]}
    elif choice == 6:
        document = {"Version": draw(junk), "Statement": draw(junk)}
    elif choice == 7:
        document = draw(st.sampled_from([DEEP_JSON, DEEP_OBJECT_JSON, HUGE, "%7B%22Statement%22", "", "null", "{}"]))
    elif choice == 10:
        deep = draw(st.sampled_from([1_000, 5_000, 50_000]))
        document = '{"Statement": ' + "[" * deep + json.dumps(statement) + "]" * deep + "}"
    elif choice == 8:
        document = json.dumps({"Statement": [statement] * size})
    else:
        document = draw(json_values)
    return document


# --- REST ---------------------------------------------------------------------------------------------


def token_of(state: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


crafted_tokens = st.one_of(
    st.text(max_size=60),
    st.builds(
        token_of,
        st.fixed_dictionaries(
            {"request": st.just({"names": [], "prefix": "/"})},
            optional={"marker": junk, "skip": junk},
        ),
    ),
    st.builds(token_of, json_values),
    st.just("A" * 5000),
)

scan_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "dry_run": st.one_of(st.just(True), junk),
            "role_names": st.one_of(st.lists(odd_role_names, max_size=4), junk, st.just(["r"] * 1001)),
            "path_prefix": st.one_of(st.sampled_from(["/", "/teams/", "teams", "/a//", "/\u00e9/"]), junk),
            "next_token": st.one_of(crafted_tokens, junk),
            "unknown": junk,
        },
    ),
    json_values,
)
flag_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={"dry_run": st.one_of(st.just(True), junk), "force": junk, "extra": junk}),
    json_values,
)
raw_bodies = st.one_of(
    st.text(max_size=50),
    st.sampled_from([DEEP_JSON, DEEP_OBJECT_JSON, "{", "[1,", '{"dry_run": tru}', "\udcff", '"\\ud800"', "1e999"]),
)
