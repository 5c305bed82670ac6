"""Helpers of the deployment tests: project paths, the bot's policy as an evaluator, an offline environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
POLICY_FILE = PROJECT / "policies" / "deputy-guard-policy.json"
CONFIG_FILE = PROJECT / ".chalice" / "config.json"
MERGE_TEMPLATE = PROJECT / ".chalice" / "resources.json"
STAMP = ".venv/.deputy-guard-installed"
# The schedule the packaging run is given, to show that DEPUTY_GUARD_SWEEP_SCHEDULE is read at deploy time.
PACKAGED_SCHEDULE = "rate(12 hours)"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, *, case_sensitive: bool) -> re.Pattern[str]:
    """IAM's wildcard matching: ``*`` any run of characters, ``?`` one character, nothing else special."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE)


Context = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class PolicyEvaluator:
    """Evaluates one identity policy the way IAM does, for the few operators deputy-guard's policy uses.

    Not an IAM simulation: no SCPs, boundaries, resource policies or policy variables. Any operator it
    does not know makes it raise, so a new kind of condition cannot be silently misjudged.
    """

    document: Mapping[str, Any]

    KNOWN_OPERATORS = frozenset({"StringEquals", "StringLike", "ForAllValues:StringEquals", "ArnEquals", "ArnLike"})

    @property
    def statements(self) -> list[dict[str, Any]]:
        return _as_list(self.document["Statement"])

    def allowed(self, action: str, resource: str, context: Context | None = None) -> bool:
        """True when some Allow statement matches and no Deny statement does."""
        ctx = context or {}
        matching = [s for s in self.statements if self._matches(s, action, resource, ctx)]
        if any(s["Effect"] == "Deny" for s in matching):
            return False
        return any(s["Effect"] == "Allow" for s in matching)

    def allowed_actions(self) -> set[str]:
        return {a for s in self.statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])}

    def _matches(self, statement: Mapping[str, Any], action: str, resource: str, ctx: Context) -> bool:
        if "NotAction" in statement or "NotResource" in statement or "NotPrincipal" in statement:
            raise AssertionError(f"the evaluator does not handle Not* elements: {statement.get('Sid')}")
        if not any(_glob(a, case_sensitive=False).match(action) for a in _as_list(statement["Action"])):
            return False
        if not any(_glob(r, case_sensitive=True).match(resource) for r in _as_list(statement["Resource"])):
            return False
        return all(
            self._condition(operator, key, _as_list(expected), ctx)
            for operator, block in statement.get("Condition", {}).items()
            for key, expected in block.items()
        )

    def _condition(self, operator: str, key: str, expected: list[str], ctx: Context) -> bool:
        if operator not in self.KNOWN_OPERATORS:
            raise AssertionError(f"the evaluator does not know condition operator {operator}")
        present = {k.lower(): v for k, v in ctx.items()}.get(key.lower())
        if operator.startswith("ForAllValues:"):
            # Every value in the request must match one listed value; no values at all matches vacuously.
            return all(v in expected for v in _as_list(present or []))
        if present is None or not isinstance(present, str):
            return False
        if operator in ("StringEquals", "ArnEquals"):
            return present in expected
        return any(_glob(e, case_sensitive=True).match(present) for e in expected)


@dataclass(frozen=True)
class Packaged:
    dist: Path
    template: dict[str, Any]
    output: str


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for a packaging subprocess: no outer make, a dead proxy so any network use fails fast."""
    prefixes = ("MAKE", "MFLAGS", "PIP_", "AWS_", "DEPUTY_GUARD_", "POWERTOOLS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    dead = "http://127.0.0.1:9"
    env.update(
        {
            "HTTP_PROXY": dead,
            "HTTPS_PROXY": dead,
            "http_proxy": dead,
            "https_proxy": dead,
            "NO_PROXY": "",
            "no_proxy": "",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra)
    return env
