"""Owner resolution: tags in configured order, then the CloudTrail actor, then the default channel."""

import pytest

from chalicelib.domain.render import resolve_owner
from chalicelib.domain.settings import DEFAULT_OWNER_TAGS

ALICE = "arn:aws:sts::111122223333:assumed-role/Admin/alice"
BOB = "arn:aws:iam::111122223333:user/bob"
DEFAULT = "#security-alerts"


@pytest.mark.parametrize(
    ("tags", "owner_tags", "actor", "expected"),
    [
        pytest.param({"owner": "alice@example.com"}, DEFAULT_OWNER_TAGS, BOB, "alice@example.com", id="owner-tag"),
        pytest.param(
            {"team": "payments", "contact": "ops"}, DEFAULT_OWNER_TAGS, BOB, "payments", id="team-before-contact"
        ),
        pytest.param(
            {"contact": "ops", "owner": "carol"},
            DEFAULT_OWNER_TAGS,
            None,
            "carol",
            id="configured-order-not-dict-order",
        ),
        pytest.param({"Owner": "dave"}, DEFAULT_OWNER_TAGS, None, "dave", id="key-case-insensitive"),
        pytest.param({"OWNER": "x", "owner": "exact"}, ["owner"], None, "exact", id="exact-spelling-wins"),
        pytest.param({"owner": "  ", "team": "payments"}, DEFAULT_OWNER_TAGS, None, "payments", id="blank-tag-skipped"),
        pytest.param({"owner": " padded "}, DEFAULT_OWNER_TAGS, None, "padded", id="tag-value-trimmed"),
        pytest.param({"cost-center": "42"}, DEFAULT_OWNER_TAGS, ALICE, ALICE, id="actor-assumed-role"),
        pytest.param({}, DEFAULT_OWNER_TAGS, BOB, BOB, id="actor-iam-user"),
        pytest.param({}, DEFAULT_OWNER_TAGS, "   ", DEFAULT, id="blank-actor-is-no-actor"),
        pytest.param({}, DEFAULT_OWNER_TAGS, None, DEFAULT, id="default"),
        pytest.param({"owner": "alice"}, ["squad"], None, DEFAULT, id="only-configured-tags-count"),
        pytest.param({"Squad": "blue"}, ["", "squad"], None, "blue", id="custom-tag-list"),
        pytest.param({"owner": "alice"}, [], BOB, BOB, id="no-owner-tags"),
    ],
)
def test_resolve_owner(tags, owner_tags, actor, expected):
    assert resolve_owner(tags, owner_tags, actor, DEFAULT) == expected


def test_resolve_owner_returns_the_actor_exactly_as_cloudtrail_gave_it():
    # Given an actor ARN and no owner tags
    # When the owner is resolved
    owner = resolve_owner({}, DEFAULT_OWNER_TAGS, ALICE, DEFAULT)
    # Then the ARN is not shortened or rewritten
    assert owner is ALICE
