"""The tag guard docs/security.md gives (aws:TagKeys "deputy-guard:*") stops every tag key the bot obeys.

IAM compares tag keys in conditions case-sensitively, so the bot must read its control keys exactly: a key the
bot obeys and the guard lets through is a bypass.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from chalicelib.domain.models import Action, Evaluation, Mode, Problem, ProblemCode, RoleRecord, Verdict
from chalicelib.domain.plan import CONTROL_TAGS, EXEMPT_UNTIL_TAG, MODE_TAG, Run, decide
from chalicelib.domain.settings import Settings
from tests.deploy.support import PROJECT, PolicyEvaluator

ROLE_ARN = "arn:aws:iam::111122223333:role/orders-sfn"
MALLORY = {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/Developer"}
FINDING = Evaluation(Verdict.NON_COMPLIANT, (Problem(ProblemCode.MISSING_SOURCE_ACCOUNT, 0, "no pin"),))


def documented_guard() -> PolicyEvaluator:
    """The one JSON policy of docs/security.md's tag section."""
    text = (PROJECT / "docs" / "security.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    guards = [b for b in blocks if "aws:TagKeys" in json.dumps(b)]
    assert len(guards) == 1, "docs/security.md should hold exactly one aws:TagKeys guard"
    return PolicyEvaluator(guards[0])


def obeyed(key: str, value: str) -> bool:
    """Whether a role tagged ``key=value`` is handled differently from the same role untagged (enforce mode)."""
    untagged = RoleRecord(name="orders-sfn", arn=ROLE_ARN, path="/", document={})
    tagged = RoleRecord(name="orders-sfn", arn=ROLE_ARN, path="/", document={}, tags={key: value})
    today = datetime(2026, 12, 7, tzinfo=UTC)

    def action(role: RoleRecord) -> Action:
        return decide(
            FINDING, role, settings=Settings(), run=Run(mode=Mode.ENFORCE, trigger="event", max_fixes=50), today=today
        )[0]

    return action(tagged) != action(untagged)


@pytest.mark.parametrize("key", [*CONTROL_TAGS, *(k.upper() for k in CONTROL_TAGS), "Deputy-Guard:Mode"])
def test_every_tag_key_the_bot_obeys_is_one_the_documented_guard_stops(key: str) -> None:
    # Given the documented guard and a developer outside it
    guard = documented_guard()
    # When the key would steer the bot (exempt / notify)
    steers = obeyed(key, "exempt") or obeyed(key, "notify")
    # Then tagging a role with it is denied to the developer
    if steers:
        assert guard.denied("iam:TagRole", ROLE_ARN, {**MALLORY, "aws:TagKeys": [key]}), key


def test_the_guard_stops_the_exact_control_keys_and_the_bot_obeys_the_mode_key() -> None:
    guard = documented_guard()
    for key in CONTROL_TAGS:
        assert guard.denied("iam:TagRole", ROLE_ARN, {**MALLORY, "aws:TagKeys": [key]}), key
    assert obeyed(MODE_TAG, "exempt") and obeyed(MODE_TAG, "notify")
    # IAM's comparison is case-sensitive: the guard lets another spelling through, which is why the bot ignores it
    assert not guard.denied("iam:TagRole", ROLE_ARN, {**MALLORY, "aws:TagKeys": ["Deputy-Guard:Mode"]})
    assert not obeyed("Deputy-Guard:Mode", "exempt")
    assert EXEMPT_UNTIL_TAG in CONTROL_TAGS
