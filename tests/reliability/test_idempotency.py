"""The DynamoDB idempotency store fails: each event is still handled, and the fix applied once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.adapters.aws import Throttled
from chalicelib.service.enforce import handle_event
from tests.reliability.conftest import Account
from tests.reliability.support import dynamo_item_pk_startswith
from tests.world import VULNERABLE, load_event

ROLE = "order-pipeline-sfn"
CREATE = "CreateRole-states-vulnerable.json"
MakeAccount = Callable[..., Account]
IDEMPOTENCY = dynamo_item_pk_startswith("idempotency#")


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    """Enforce mode with the production once-guard (Powertools Idempotency on the deputy-guard table)."""
    made = account(mode="enforce", idempotent=True)
    made.create_role(ROLE, VULNERABLE)
    return made


def test_store_down_the_event_is_handled_unguarded_and_fixed_once(acct: Account) -> None:
    # Given the idempotency store rejects every write
    acct.faults.inject("dynamodb", "PutItem", "ServiceUnavailable", when=IDEMPOTENCY)
    # When the same event is delivered twice (at-least-once delivery)
    first = handle_event(load_event(CREATE), acct.deps)
    second = handle_event(load_event(CREATE), acct.deps)
    # Then both deliveries were handled, unguarded, and said so; the role was fixed once, recorded once,
    # announced once: the second delivery re-read a compliant role and had nothing to do
    assert first["action"] == "fixed"
    assert second["verdict"] == "compliant" and second["action"] == "none"
    assert len(acct.guard.fixes()) == 1 and len(acct.records(ROLE)) == 1
    assert len(acct.world.notifier.all) == 1
    assert acct.metrics["IdempotencyStoreFailed"] == 2
    assert len(acct.logs.with_message("idempotency store unavailable; handling the event unguarded")) == 2


def test_store_failing_after_the_work_does_not_run_it_twice(acct: Account) -> None:
    # Given the store accepts the in-progress record but fails to mark it complete
    acct.faults.inject("dynamodb", "UpdateItem", "ServiceUnavailable", when=IDEMPOTENCY)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the work ran once, and its own result is returned (not a second run's "nothing to do")
    assert out["action"] == "fixed"
    assert len(acct.logs.decisions(ROLE)) == 1
    assert acct.logs.with_message("idempotency store unavailable; the event was handled but its result not stored")


def test_a_redelivered_event_is_answered_from_the_store(acct: Account) -> None:
    # Given an event handled once with a healthy store
    handle_event(load_event(CREATE), acct.deps)
    # When EventBridge delivers it again
    again = handle_event(load_event(CREATE), acct.deps)
    # Then the stored result is returned and logged as a replay; nothing is read, decided or written again
    assert again["replayed"] is True and again["action"] == "fixed"
    assert len(acct.logs.decisions(ROLE)) == 1
    assert acct.logs.with_message("event already handled; its stored result is returned")
    assert len(acct.guard.fixes()) == 1


def test_a_failed_attempt_does_not_block_the_retry(acct: Account) -> None:
    # Given IAM throttles GetRole beyond botocore's retries during the first delivery
    fault = acct.faults.inject("iam", "GetRole", "Throttling")
    with pytest.raises(Throttled):
        handle_event(load_event(CREATE), acct.deps)
    # When the outage ends and Lambda retries the invocation
    acct.faults.clear()
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the retry is handled in full: the failed attempt left no in-progress record behind
    assert fault.hits == 3  # every attempt of the failed invocation
    assert out["action"] == "fixed" and "replayed" not in out
