"""A control tag in another case hides nothing: the role is handled as untagged, and its owners are told why."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.service.enforce import handle_event
from tests.world import VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"  # the role of CreateRole-states-vulnerable.json
MakeWorld = Callable[..., World]


def test_a_mode_tag_in_another_case_does_not_exempt_a_role_in_enforce_mode(make_world: MakeWorld) -> None:
    # Given enforce mode and a vulnerable role tagged Deputy-Guard:Mode=exempt (past a guard on "deputy-guard:*")
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE, tags={"Deputy-Guard:Mode": "exempt"})
    # When its CreateRole event arrives
    outcome = handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    # Then the role is fixed and its owners are told, with the ignored tag named as a warning
    assert outcome["action"] == "fixed"
    assert world.trust(ROLE) != VULNERABLE
    [notice] = world.notifier.all
    ignored = [p for p in notice.problems if p.code.value == "tag_key_case"]
    assert len(ignored) == 1 and "Deputy-Guard:Mode" in ignored[0].message


def test_the_exact_mode_tag_still_exempts(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE, tags={"deputy-guard:mode": "exempt"})
    outcome = handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    assert outcome["action"] == "exempt"
    assert world.trust(ROLE) == VULNERABLE
