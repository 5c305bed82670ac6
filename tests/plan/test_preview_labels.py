"""One label per outcome: a role gets the same action from a dry-run scan and from GET /roles/{name}.

A dry run previews a run with fixes (tags, the CloudFormation rule and the cap applied), whatever the
bot's own mode; runs that act label what they did.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.domain.plan import CFN_STACK_TAG, MODE_TAG
from chalicelib.service.enforce import check_role
from chalicelib.service.scan import scan
from tests.world import COMPLIANT, FOREIGN, VULNERABLE, World

MakeWorld = Callable[..., World]
ROLES = {
    "plain-sfn": (VULNERABLE, {}, "would_fix"),
    "stack-sfn": (VULNERABLE, {CFN_STACK_TAG: "orders-prod"}, "would_notify"),
    "told-sfn": (VULNERABLE, {MODE_TAG: "notify"}, "would_notify"),
    "forced-sfn": (VULNERABLE, {MODE_TAG: "enforce"}, "would_fix"),
    "opted-out-sfn": (VULNERABLE, {MODE_TAG: "exempt"}, "exempt"),
    "partner-sfn": (FOREIGN, {}, "review"),
    "billing-sfn": (COMPLIANT, {}, "none"),
}


@pytest.mark.parametrize("mode", ["notify", "enforce", "dry-run"])
def test_scan_and_get_role_agree_on_every_label(make_world: MakeWorld, mode: str) -> None:
    # Given one role of each kind, in each of the bot's modes
    world = make_world(mode=mode, idempotent=False)
    for name, (document, tags, _label) in ROLES.items():
        world.create_role(name, document, tags=tags)
    # When previewed by a dry-run scan and by GET /roles/{name}
    scanned = {r.role_name: r.action.value for r in scan(world.deps, dry_run=True).results}
    checked = {name: check_role(name, world.deps) for name in ROLES}
    # Then both give the same label, the one documented for it
    for name, (_document, _tags, label) in ROLES.items():
        result = checked[name]
        assert result is not None
        assert scanned[name] == result.action.value == label, name


def test_a_cloudformation_preview_says_what_a_fix_run_does(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", idempotent=False)
    world.create_role("stack-sfn", VULNERABLE, tags={CFN_STACK_TAG: "orders-prod"})
    (preview,) = scan(world.deps, dry_run=True).results
    (done,) = scan(world.deps, dry_run=False).results
    assert (preview.action.value, done.action.value) == ("would_notify", "notified")
    assert "owners would get the patch" in preview.reason and "enforce mode sends" not in preview.reason


def test_a_preview_reaches_the_cap_where_the_fix_run_would(make_world: MakeWorld) -> None:
    world = make_world(max_fixes_per_run="2", idempotent=False)
    for index in range(4):
        world.create_role(f"v{index}", VULNERABLE)
    preview = [r.action.value for r in scan(world.deps, dry_run=True).results]
    done = [r.action.value for r in scan(world.deps, dry_run=False).results]
    assert preview == ["would_fix", "would_fix", "capped", "capped"]
    assert done == ["fixed", "fixed", "capped", "capped"]
