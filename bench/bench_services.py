"""Precision and recall on a mixed-service account: deputy-guard beside Prowler's confused-deputy check.

Run: .venv/bin/python bench/bench_services.py [--json]

The account is seeded on the embedded AWS (moto's server on 127.0.0.1). Every role has a ground-truth
label: *vulnerable* when it trusts a service whose AWS page documents the aws:SourceArn/aws:SourceAccount
pin and no statement pins that service to the role's own account; *safe* otherwise (pinned, or a service
that sends no keys or breaks when pinned). deputy-guard is run as a user runs it (`deputy-guard scan
--format json`, by default and with `--services all`); Prowler's check is modelled from its source
(bench/README.md, "Services: precision and recall beside Prowler") over the same ListRoles answer. Exit 2 when a tool's
answers are not the ones below, since the figures would then mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ACCOUNT = "123456789012"  # moto's account
FOREIGN = "444455556666"
CLI = str(Path(sys.executable).with_name("deputy-guard"))


@dataclass(frozen=True)
class Case:
    name: str
    services: tuple[str, ...]
    vulnerable: bool
    why: str
    condition: dict[str, Any] | None = None


def _pin(prefix: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:{prefix}:*:{account}:*"},
    }


CASES = (
    Case("sfn-unpinned", ("states.amazonaws.com",), True, "Step Functions, documented, no pin"),
    Case("sfn-pinned", ("states.amazonaws.com",), False, "Step Functions pinned as its guide shows", _pin("states")),
    Case("sfn-and-lambda", ("states.amazonaws.com", "lambda.amazonaws.com"), True, "Step Functions beside Lambda"),
    Case("scheduler-unpinned", ("scheduler.amazonaws.com",), True, "Scheduler, documented, no pin"),
    Case(
        "scheduler-states-arn",
        ("scheduler.amazonaws.com",),
        True,
        "Scheduler pinned with a Step Functions ARN: Scheduler's own ARN never matches, so nothing pins it",
        {"ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"}},
    ),
    Case(
        "scheduler-foreign",
        ("scheduler.amazonaws.com",),
        True,
        "Scheduler pinned to another account: a backdoor",
        {"StringEquals": {"aws:SourceAccount": FOREIGN}},
    ),
    Case("flow-logs-unpinned", ("vpc-flow-logs.amazonaws.com",), True, "VPC Flow Logs, documented, no pin"),
    Case("flow-logs-pinned", ("vpc-flow-logs.amazonaws.com",), False, "VPC Flow Logs pinned to ec2", _pin("ec2")),
    Case("config-unpinned", ("config.amazonaws.com",), True, "AWS Config, documented, no pin"),
    Case("datasync-unpinned", ("datasync.amazonaws.com",), True, "DataSync, documented, no pin"),
    Case("codedeploy-unpinned", ("codedeploy.amazonaws.com",), True, "CodeDeploy, documented (with a caveat)"),
    Case("sagemaker-unpinned", ("sagemaker.amazonaws.com",), True, "SageMaker, documented per feature"),
    Case("eks-cluster-unpinned", ("eks.amazonaws.com",), True, "EKS cluster role, documented since 2025"),
    Case(
        "transcribe-and-transcoder",
        ("elastictranscoder.amazonaws.com", "transcribe.amazonaws.com"),
        True,
        "Transcribe (documented) beside Elastic Transcoder (sends no keys)",
    ),
    Case("cloudtrail-to-logs", ("cloudtrail.amazonaws.com",), False, "CloudTrail to CloudWatch Logs: a pin breaks it"),
    Case("transcoder-only", ("elastictranscoder.amazonaws.com",), False, "Elastic Transcoder: a pin broke it"),
    Case("ec2-instance", ("ec2.amazonaws.com",), False, "EC2: no documented keys"),
    Case("lambda-function", ("lambda.amazonaws.com",), False, "Lambda execution role: no documented trust pin"),
    Case("apigateway-logs", ("apigateway.amazonaws.com",), False, "API Gateway: no documented keys"),
    Case("backup-vault", ("backup.amazonaws.com",), False, "Backup: no documented trust pin"),
    Case("glue-job", ("glue.amazonaws.com",), False, "Glue: no documented keys"),
    Case("secrets-rotation", ("secretsmanager.amazonaws.com",), False, "Secrets Manager: stays in the account"),
    Case(
        "firehose-external-id",
        ("firehose.amazonaws.com",),
        False,
        "Firehose with sts:ExternalId set to the account, as its guide shows",
        {"StringEquals": {"sts:ExternalId": ACCOUNT}},
    ),
)


def _document(case: Case) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": list(case.services) if len(case.services) > 1 else case.services[0]},
        "Action": "sts:AssumeRole",
    }
    if case.condition:
        statement["Condition"] = case.condition
    return {"Version": "2012-10-17", "Statement": [statement]}


# --- Prowler's iam_role_cross_service_confused_deputy_prevention, as its source reads ----------------

# The condition keys its condition parser accepts under each operator (IfExists forms are not accepted).
_PROWLER_KEYS = {
    "stringequals": {
        "aws:sourceaccount",
        "aws:sourceowner",
        "s3:resourceaccount",
        "aws:principalaccount",
        "aws:resourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:principalorgid",
        "aws:sourcevpc",
        "aws:sourcevpce",
    },
    "stringlike": {
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:sourcearn",
        "aws:principalarn",
        "aws:resourceaccount",
        "aws:principalaccount",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:principalorgid",
    },
    "arnlike": {"aws:sourcearn", "aws:principalarn"},
    "arnequals": {"aws:sourcearn", "aws:principalarn"},
}
_PROWLER_EXEMPT = {"secretsmanager.amazonaws.com", "eks.amazonaws.com"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _prowler_service_role(document: dict[str, Any]) -> bool:
    """Prowler's "service role": every Allow statement trusts only Service principals with an AssumeRole action."""
    statements = [s for s in _listed(document["Statement"]) if s.get("Effect") == "Allow"]
    return bool(statements) and all(
        isinstance(s.get("Principal"), dict)
        and set(s["Principal"]) == {"Service"}
        and any(a in ("sts:AssumeRole", "sts:*", "*") for a in _listed(s.get("Action", [])))
        for s in statements
    )


def _prowler_condition_pins(condition: dict[str, Any]) -> bool:
    # Run with cross-account access allowed: any accepted key under an accepted operator passes, whatever its value.
    for operator, block in condition.items():
        accepted = _PROWLER_KEYS.get(operator.lower(), set())
        if any(key.lower() in accepted for key in block):
            return True
    return False


def prowler_flags(arn: str, document: dict[str, Any]) -> bool | None:
    """FAIL (True), PASS (False), or not checked (None: not a service role, or a service-linked one)."""
    if "aws-service-role" in arn or not _prowler_service_role(document):
        return None
    for statement in _listed(document["Statement"]):
        if statement.get("Effect") != "Allow":
            continue
        services = set(_listed(statement["Principal"]["Service"]))
        if services <= _PROWLER_EXEMPT:
            continue
        if not _prowler_condition_pins(statement.get("Condition", {})):
            return True
    return False


# --- the run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    tool: str
    flagged: frozenset[str]

    def counts(self, truth: dict[str, bool]) -> dict[str, Any]:
        tp = sum(1 for name in self.flagged if truth[name])
        fp = len(self.flagged) - tp
        fn = sum(1 for name, vulnerable in truth.items() if vulnerable and name not in self.flagged)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        return {"tool": self.tool, "flagged": len(self.flagged), "tp": tp, "fp": fp, "fn": fn,
                "precision": round(precision, 2), "recall": round(recall, 2),
                "false_positives": sorted(n for n in self.flagged if not truth[n]),
                "false_negatives": sorted(n for n, v in truth.items() if v and n not in self.flagged)}  # fmt: skip


def _scan(endpoint: str, *extra: str) -> dict[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    env.update(AWS_DEFAULT_REGION="us-east-1", DEPUTY_GUARD_TABLE="deputy-guard-bench")
    result = subprocess.run(
        [CLI, "scan", "--format", "json", *extra], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"deputy-guard scan failed: {result.stderr.strip()}")
    return {row["role_name"]: row for row in json.loads(result.stdout)["results"]}


def _flagged(rows: dict[str, dict[str, Any]], wanted: Callable[[dict[str, Any]], bool]) -> frozenset[str]:
    return frozenset(name for name, row in rows.items() if wanted(row))


def run() -> dict[str, Any]:
    import boto3

    from deputy_guard.embedded import EmbeddedAws

    server = EmbeddedAws().start()
    try:
        iam = boto3.client(
            "iam", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"
        )
        for case in CASES:
            iam.create_role(RoleName=case.name, AssumeRolePolicyDocument=json.dumps(_document(case)))
        listed = iam.list_roles()["Roles"]
        prowler = frozenset(
            role["RoleName"]
            for role in listed
            if prowler_flags(role["Arn"], _as_document(role["AssumeRolePolicyDocument"]))
        )
        default = _scan(server.url)
        every = _scan(server.url, "--services", "all")
    finally:
        server.stop()
    truth = {case.name: case.vulnerable for case in CASES}
    finding = ("non_compliant", "needs_review")
    scores = [
        Score("Prowler iam_role_cross_service_confused_deputy_prevention", prowler),
        Score("deputy-guard, default (states)", _flagged(default, lambda r: r["verdict"] in finding)),
        Score("deputy-guard, --services all: findings", _flagged(every, lambda r: r["verdict"] in finding)),
        Score(
            "deputy-guard, --services all: fixes it would write",
            _flagged(every, lambda r: r["verdict"] == "non_compliant" and r.get("auto_fix") is True),
        ),
    ]
    return {
        "roles": len(CASES),
        "vulnerable": sum(truth.values()),
        "scores": [score.counts(truth) for score in scores],
        "cases": [{"role": c.name, "vulnerable": c.vulnerable, "why": c.why} for c in CASES],
    }


def _as_document(value: Any) -> dict[str, Any]:
    return json.loads(unquote(value)) if isinstance(value, str) else dict(value)


def render(rows: Iterable[dict[str, Any]]) -> str:
    """The precision and recall table, one row per tool."""
    lines = ["| tool | flagged | TP | FP | FN | precision | recall |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['tool']} | {r['flagged']} | {r['tp']} | {r['fp']} | {r['fn']} | {r['precision']} | {r['recall']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    outcome = run()
    if args.json:
        print(json.dumps(outcome, indent=2))
    else:
        print(f"{outcome['roles']} roles, {outcome['vulnerable']} vulnerable by the ground truth\n")
        print(render(outcome["scores"]))
        for row in outcome["scores"]:
            if row["false_positives"] or row["false_negatives"]:
                missed = row["false_negatives"]
                print(f"\n{row['tool']}: false positives {row['false_positives']}, false negatives {missed}")
    every = next(r for r in outcome["scores"] if r["tool"].endswith("would write"))
    # A fix deputy-guard would write on a safe role would break it: the benchmark's one hard expectation.
    return 2 if every["fp"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
