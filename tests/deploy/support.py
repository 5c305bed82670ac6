"""Helpers of the deployment tests: project paths, the bot's policy as an evaluator, an offline environment."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
POLICY_FILE = PROJECT / "policies" / "deputy-guard-policy.json"
CONFIG_FILE = PROJECT / ".chalice" / "config.json"
MERGE_TEMPLATE = PROJECT / ".chalice" / "resources.json"
STAMP = ".venv/.deputy-guard-installed"
# The Lambda runtime `make package` builds for (the Makefile's LAMBDA_RUNTIME) and its architecture.
RUNTIME = "python3.13"
ARCHITECTURE = "arm64"
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

    KNOWN_OPERATORS = frozenset(
        {
            "StringEquals",
            "StringLike",
            "ForAllValues:StringEquals",
            "ForAnyValue:StringLike",
            "ArnEquals",
            "ArnLike",
            "ArnNotEquals",
            "ArnNotLike",
        }
    )

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

    def denied(self, action: str, resource: str, context: Context | None = None) -> bool:
        """True when some Deny statement matches (what a guard, an SCP or a boundary, stops)."""
        ctx = context or {}
        return any(s["Effect"] == "Deny" and self._matches(s, action, resource, ctx) for s in self.statements)

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
        if operator in ("ArnNotEquals", "ArnNotLike"):
            # A negated operator matches when the key is absent, as in IAM.
            return present is None or not self._condition(operator.replace("Not", "", 1), key, expected, ctx)
        if operator.startswith("ForAllValues:"):
            # Every value in the request must match one listed value; no values at all matches vacuously.
            return all(v in expected for v in _as_list(present or []))
        if operator == "ForAnyValue:StringLike":
            # Some value in the request matches some pattern, case-sensitively; no values never matches.
            return any(_glob(e, case_sensitive=True).match(v) for v in _as_list(present or []) for e in expected)
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
    runtime_python: Path | None  # the interpreter that compiled the bytecode; None: built with PRECOMPILE=no


@cache
def bundle() -> ModuleType:
    """deploy/bundle.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("deputy_guard_bundle", PROJECT / "deploy" / "bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def runtime_python() -> Path | None:
    """The runtime's interpreter as `make package` finds it, or None on a machine without that Python."""
    try:
        return Path(bundle().find_python(RUNTIME))
    except bundle().BundleError:
        return None


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def expand_sam(template: Mapping[str, Any], code_uri: str = "s3://artifacts/deployment.zip") -> dict[str, Any]:
    """The plain CloudFormation that AWS::Serverless-2016-10-31 makes of ``template``, offline.

    ``aws cloudformation package`` replaces each function's local CodeUri with an S3 URI first; the SAM
    translator insists on one, so ``code_uri`` stands in for it. No AWS call is made: the template names no
    managed policy, and the session only lends its region.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document = copy.deepcopy(dict(template))
    for resource in document["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    translator = Translator({}, Parser(), boto_session=session)
    return dict(translator.translate(document, parameter_values={}, get_managed_policy_map=lambda: {}))


def resolve(value: Any, names: Mapping[str, str]) -> Any:
    """Replace Ref / Fn::GetAtt (Arn) / Fn::Sub of the names given by concrete strings, recursively."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in names:
        return names[value["Ref"]]
    if set(value) == {"Fn::GetAtt"} and ".".join(value["Fn::GetAtt"]) in names:
        return names[".".join(value["Fn::GetAtt"])]
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
    return {k: resolve(v, names) for k, v in value.items()}


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


def cfn_lint(path: Path) -> tuple[list[dict[str, Any]], int, str]:
    """cfn-lint on ``path``, offline: its findings (JSON), its exit status and its stderr."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=offline_env(),
    )
    return json.loads(result.stdout or "[]"), result.returncode, result.stderr


def assert_cfn_lint_clean(path: Path) -> None:
    """No cfn-lint error in ``path``; warnings are reported as pytest warnings."""
    matches, returncode, stderr = cfn_lint(path)
    errors = [m for m in matches if m["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=2)
    for match in matches:
        warnings.warn(f"cfn-lint {match['Rule']['Id']}: {match['Message']}", stacklevel=2)
    assert returncode in (0, 4, 8), stderr  # 4: warnings only, 8: informational only
