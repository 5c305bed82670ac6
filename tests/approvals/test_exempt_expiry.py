"""An exemption from Slack lasts until a date: plan.decide honours its exempt-until tag; a revert keeps its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import Action, Mode, RoleRecord
from chalicelib.domain.plan import EXEMPT_UNTIL_TAG, MODE_TAG, NO_EXPIRY, Run, decide, exempt_until
from chalicelib.domain.settings import Settings
from chalicelib.service.enforce import remediate
from chalicelib.service.revert import revert
from tests.world import ACCOUNT, VULNERABLE, World

TODAY = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def decision(tags: dict[str, str]) -> tuple[Action, str]:
    role = RoleRecord("orders-sfn", f"arn:aws:iam::{ACCOUNT}:role/orders-sfn", "/", VULNERABLE, tags=tags)
    evaluation = evaluate(role.document, role.context())
    run = Run(mode=Mode.ENFORCE, trigger="sweep", max_fixes=50)
    return decide(evaluation, role, settings=Settings(mode=Mode.ENFORCE), run=run, today=TODAY)


@pytest.mark.parametrize("until", ["2026-11-20", "2026-12-20"])
def test_an_exemption_holds_until_the_end_of_its_last_day(until: str) -> None:
    action, reason = decision({MODE_TAG: "exempt", EXEMPT_UNTIL_TAG: until})
    assert action is Action.EXEMPT and until in reason


def test_a_lapsed_exemption_gives_the_role_back_to_the_mode() -> None:
    assert decision({MODE_TAG: "exempt", EXEMPT_UNTIL_TAG: "2026-11-19"})[0] is Action.FIXED


@pytest.mark.parametrize("until", [NO_EXPIRY, "", "soon", "2026-13-40"])
def test_no_usable_date_leaves_the_exemption_in_force(until: str) -> None:
    assert decision({MODE_TAG: "exempt", EXEMPT_UNTIL_TAG: until}) == (Action.EXEMPT, f"tag {MODE_TAG}=exempt")


def test_the_date_alone_exempts_nothing() -> None:
    assert decision({EXEMPT_UNTIL_TAG: "2030-01-01"})[0] is Action.FIXED


def test_tag_keys_match_exactly_as_iams_conditions_do() -> None:
    assert exempt_until({EXEMPT_UNTIL_TAG: "2026-12-01"}) is not None
    # another spelling is ignored (and reported as tag_key_case): a guard on "deputy-guard:*" never saw it
    assert exempt_until({"Deputy-Guard:Exempt-Until": "2026-12-01"}) is None


def test_a_revert_after_a_lapsed_exemption_exempts_for_good(make_world: Callable[..., World]) -> None:
    # Given a role once exempted from Slack until a date now past, then fixed by the bot
    world = make_world(mode="enforce")
    world.create_role("orders-sfn", VULNERABLE, tags={MODE_TAG: "notify", EXEMPT_UNTIL_TAG: "2020-01-01"})
    remediate("orders-sfn", world.deps, actor="arn:aws:iam::111122223333:user/ops")
    # When it is reverted
    assert revert("orders-sfn", world.deps).status == "reverted"
    # Then its exemption does not inherit the old date: the bot will not fix it again
    tags = world.tags("orders-sfn")
    assert tags[MODE_TAG] == "exempt" and tags[EXEMPT_UNTIL_TAG] == NO_EXPIRY
