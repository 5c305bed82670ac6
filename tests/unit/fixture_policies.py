"""Loads the real-shaped trust-policy fixtures under tests/fixtures/trust-policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.domain.catalogue import parse_services
from chalicelib.domain.models import EngineOptions, Require, RoleContext

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "trust-policies"


@dataclass(frozen=True)
class PolicyCase:
    name: str
    description: str
    context: RoleContext
    options: EngineOptions
    policy: Any
    verdict: str
    problem_codes: list[str]
    fixed_policy: dict[str, Any] | None
    # The fix without whitespace, byte for byte (number literals as the policy's text has them), when given.
    fixed_policy_compact: str | None = None


def load_case(path: Path) -> PolicyCase:
    raw = json.loads(path.read_text(encoding="utf-8"))
    context = raw["context"]
    options = raw.get("options", {})
    expected = raw["expected"]
    return PolicyCase(
        name=path.stem,
        description=raw["description"],
        context=RoleContext(account_id=context["account_id"], partition=context["partition"], path=context["path"]),
        options=EngineOptions(
            require=Require(options.get("require", "both")),
            size_quota=options.get("size_quota", EngineOptions().size_quota),
            services=parse_services(options.get("services")),
        ),
        policy=raw["policy"],
        verdict=expected["verdict"],
        problem_codes=expected["problem_codes"],
        fixed_policy=expected["fixed_policy"],
        fixed_policy_compact=expected.get("fixed_policy_compact"),
    )


def all_cases() -> list[PolicyCase]:
    return [load_case(path) for path in sorted(FIXTURE_DIR.glob("*.json"))]
