"""No token can be used twice, even under concurrent clicks: one conditional write, on moto's DynamoDB.

DynamoDB applies each write to an item atomically. moto's backend checks a ConditionExpression and then
applies the update with no lock, so two threads can both pass the check; ``atomic_writes`` gives moto
DynamoDB's per-call atomicity by serialising each single UpdateItem/PutItem call. It never serialises
two calls of the code under test: a read-then-write "consume" still double-spends under it (the control
at the end shows the property catches that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models import DynamoDBBackend

from chalicelib.adapters import aws
from chalicelib.adapters.tokens import APPROVAL_PK_PREFIX, APPROVAL_SK, DynamoTokenStore
from chalicelib.domain.render_slack import render_slack
from chalicelib.domain.slack_actions import ApprovalToken, parse_click
from chalicelib.runtime.slack_approvals import build_approvals
from chalicelib.service.approvals import handle_click
from chalicelib.service.enforce import handle_event
from tests.approvals.conftest import (
    APPROVAL_SETTINGS,
    RESPONSE_BASE,
    buttons_of,
    click_payload,
    cloudtrail,
    form_body,
)
from tests.world import VULNERABLE, World

_serial = threading.Lock()
_counter = iter(range(10**9))


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("update_item", "put_item"):
        original = getattr(DynamoDBBackend, name)

        def serialised(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _serial:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, serialised)


@pytest.fixture
def store(make_world: Callable[..., World], atomic_writes: None) -> Iterator[DynamoTokenStore]:
    world = make_world()
    yield DynamoTokenStore(aws.DynamoTable(aws.make_client("dynamodb"), world.deps.settings.table))


def new_token(store: DynamoTokenStore, *, expires_in: int) -> ApprovalToken:
    now = int(time.time())
    token = ApprovalToken(
        token_id=f"{next(_counter):032d}",
        action="apply_fix",
        account="111122223333",
        role_name="orders-sfn",
        role_arn="arn:aws:iam::111122223333:role/orders-sfn",
        document_digest="d" * 64,
        plan_digest="p" * 64,
        expires_at=now + expires_in,
        created_at=now,
    )
    store.put(token)
    return token


def race(clicks: int, click: Callable[[int], Any]) -> list[Any]:
    """Run ``clicks`` calls at once (released together by a barrier)."""
    start = threading.Barrier(clicks)

    def one(index: int) -> Any:
        start.wait()
        return click(index)

    with ThreadPoolExecutor(max_workers=clicks) as pool:
        return list(pool.map(one, range(clicks)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clicks=st.integers(min_value=2, max_value=12), expired=st.booleans())
def test_of_any_number_of_concurrent_clicks_at_most_one_uses_the_token(
    store: DynamoTokenStore, clicks: int, expired: bool
) -> None:
    token = new_token(store, expires_in=-1 if expired else 3600)
    now = int(time.time())
    won = race(clicks, lambda i: store.consume(token.token_id, f"slack:U{i:04d}", now))
    assert sum(won) == (0 if expired else 1)
    stored = store.get(token.token_id)
    assert stored is not None
    if expired:
        assert stored.used is False
    else:
        assert stored.used is True and stored.used_by == f"slack:U{won.index(True):04d}"
    # And afterwards it stays used: a late click loses too
    assert store.consume(token.token_id, "slack:ULATE", now) is False


def test_concurrent_approved_clicks_fix_the_role_exactly_once(
    make_world: Callable[..., World], atomic_writes: None
) -> None:
    # Given a notify-mode alert with an Apply fix button, and its approval service
    world = make_world(**{**APPROVAL_SETTINGS, "slack_response_url_base": RESPONSE_BASE})
    world.create_role("orders-sfn", VULNERABLE)
    handle_event(cloudtrail("orders-sfn"), world.deps)
    approvals = build_approvals(world.deps)
    [notice] = world.notifier.single
    message = render_slack(approvals.minter.for_notice(notice))
    token, block = buttons_of(message)["apply_fix"]
    click = parse_click(
        form_body(click_payload(token, "apply_fix", block_id=block, message=message)), response_url_base=RESPONSE_BASE
    )
    # When eight clicks arrive at once (double clicks, several approvers, Slack retries)
    outcomes = race(8, lambda _i: handle_click(click, approvals))
    # Then exactly one acted and one fix is on record. Every other click was refused: the button was used,
    # or (a click scheduled after the fix) the role no longer holds the document the message showed.
    assert sorted(o.status for o in outcomes) == ["fixed"] + ["refused"] * 7
    assert {o.reason for o in outcomes if o.status == "refused"} <= {"used", "changed"}
    role = world.iam.get_role(RoleName="orders-sfn")["Role"]
    assert [r.kind.value for r in world.deps.audit.history(role["Arn"])] == ["fix"]
    assert [w.kind for w in world.guard.writes] == ["fix"]


class ReadThenWrite:
    """The mistake the property exists to catch: check the flag, then set it, in two calls."""

    def __init__(self, table: aws.DynamoTable, clicks: int) -> None:
        self._table = table
        self._between = threading.Barrier(clicks)

    def consume(self, token_id: str, actor: str, now: int) -> bool:
        [item] = self._table.query(APPROVAL_PK_PREFIX + token_id, sk_prefix=APPROVAL_SK, limit=1)
        self._between.wait()  # every click has read "unused" before any writes
        if item["used"]:
            return False
        self._table.update(APPROVAL_PK_PREFIX + token_id, APPROVAL_SK, {"used": True, "used_by": actor})
        return True


def test_the_property_catches_a_read_then_write_consume(store: DynamoTokenStore) -> None:
    token = new_token(store, expires_in=3600)
    naive = ReadThenWrite(aws.DynamoTable(aws.make_client("dynamodb"), "deputy-guard"), clicks=4)
    won = race(4, lambda i: naive.consume(token.token_id, f"slack:U{i}", int(time.time())))
    assert sum(won) == 4  # every click "used" the same token: what the conditional write prevents
