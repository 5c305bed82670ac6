"""`deputy-guard exempt|remediate|revert ROLE` in the caller's own account: subprocesses over real HTTP."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import CLI, cli_env, client, create_role, trust
from tests.world import FOREIGN, VULNERABLE

pytestmark = pytest.mark.e2e


def run(endpoint: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, env=cli_env(endpoint, **env), check=False
    )


def tags(name: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in client("iam").list_role_tags(RoleName=name)["Tags"]}


def action(endpoint: str, name: str) -> str:
    scanned = run(endpoint, "scan", "--role", name, "--format", "json")
    return str(json.loads(scanned.stdout)["results"][0]["action"])


def test_exempt_remove_remediate_revert_and_a_refused_remediate(endpoint: str) -> None:
    assert run(endpoint, "setup").returncode == 0
    create_role("orders-sfn", VULNERABLE)
    # When the role is exempted for a week, a scan leaves it alone
    exempted = run(endpoint, "exempt", "orders-sfn", "--days", "7", "--reason", "migration")
    assert exempted.returncode == 0, exempted.stderr
    assert tags("orders-sfn")["deputy-guard:mode"] == "exempt" and action(endpoint, "orders-sfn") == "exempt"
    # When the exemption is removed, the role is a finding again
    removed = run(endpoint, "exempt", "orders-sfn", "--remove")
    assert removed.returncode == 0 and "no longer exempt" in removed.stdout, removed.stderr
    assert tags("orders-sfn") == {} and action(endpoint, "orders-sfn") == "would_fix"
    # And a second removal has nothing to do
    assert "nothing to remove" in run(endpoint, "exempt", "orders-sfn", "--remove").stdout
    # When it is remediated, it is fixed, with the command to undo it
    fixed = run(endpoint, "remediate", "orders-sfn")
    assert fixed.returncode == 0 and "-> fixed" in fixed.stdout, fixed.stderr
    assert "undo with: deputy-guard revert orders-sfn" in fixed.stdout
    assert trust("orders-sfn") != VULNERABLE
    # When it is reverted, the original is back and the role exempt, so a remediation is refused (exit 1)
    assert run(endpoint, "revert", "orders-sfn").returncode == 0
    assert trust("orders-sfn") == VULNERABLE
    refused = run(endpoint, "remediate", "orders-sfn")
    assert refused.returncode == 1 and "refused" in refused.stderr and "-> exempt" in refused.stdout


def test_remediate_leaves_a_role_that_needs_review_alone_and_an_unknown_role_is_exit_2(endpoint: str) -> None:
    assert run(endpoint, "setup").returncode == 0
    create_role("partner-sfn", FOREIGN)
    review = run(endpoint, "remediate", "partner-sfn", "--format", "json")
    assert review.returncode == 1 and json.loads(review.stdout)["action"] == "review"
    assert trust("partner-sfn") == FOREIGN
    unknown = run(endpoint, "remediate", "ghost")
    assert unknown.returncode == 2 and "'ghost' does not exist" in unknown.stderr


def test_remediate_without_a_signing_key_warns_and_a_dry_run_does_not(endpoint: str) -> None:
    assert run(endpoint, "setup").returncode == 0
    create_role("unsigned-sfn", VULNERABLE)
    preview = run(endpoint, "remediate", "unsigned-sfn", "--dry-run", DEPUTY_GUARD_SIGNING_KEY="")
    assert "warning" not in preview.stderr, preview.stderr
    fixed = run(endpoint, "remediate", "unsigned-sfn", DEPUTY_GUARD_SIGNING_KEY="")
    assert fixed.returncode == 0 and "-> fixed" in fixed.stdout, fixed.stderr
    assert "DEPUTY_GUARD_SIGNING_KEY is not set" in fixed.stderr and "will not revert" in fixed.stderr
