"""`deputy-guard check DIR` throughput: trust policies checked per second in one process, files and templates,
and Terraform sources (`.tf` files) per second.

Run: .venv/bin/python bench/bench_check.py [--files N] [--templates N] [--tf-files N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import ACCOUNT, MIX, ROLE
from deputy_guard.checking import CheckOptions, check_paths

TARGET_POLICIES = 2_000  # per second, policy files in one directory, one process
TARGET_TF_FILES = 1_000  # .tf files per second, one process
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "fixtures" / "iac" / "cfn" / "order-workflow.yml"


def seed(directory: Path, files: int, templates: int) -> dict[str, int]:
    """Write ``files`` trust policies (the engine benchmark's mix, as files) and ``templates`` YAML templates."""
    plain = [document for _, document, context in MIX if context is ROLE and isinstance(document, dict)]
    counts = {"policies": 0, "templates": 0}
    for index in range(files):
        folder = directory / f"team-{index % 50:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"role-{index:05d}.json").write_text(
            json.dumps(plain[index % len(plain)], indent=2), encoding="utf-8"
        )
        counts["policies"] += 1
    for index in range(templates):
        shutil.copy(TEMPLATE, directory / f"stack-{index:03d}.yml")
        counts["templates"] += 1
    return counts


# One .tf file of a module: a jsonencode role and a policy-document role pinned through the data sources.
TF_FILE = """\
data "aws_iam_policy_document" "trust_{n}" {{
  statement {{
    actions = ["sts:AssumeRole"]
    principals {{
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }}
    condition {{
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }}
    condition {{
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${{data.aws_partition.current.partition}}:states:*:${{local.account}}:*"]
    }}
  }}
}}

resource "aws_iam_role" "pinned_{n}" {{
  name               = "pinned-{n}"
  assume_role_policy = data.aws_iam_policy_document.trust_{n}.json
}}

resource "aws_iam_role" "open_{n}" {{
  name = "open-{n}"
  assume_role_policy = jsonencode({{
    Version   = "2012-10-17"
    Statement = [{{ Effect = "Allow", Action = "sts:AssumeRole", Principal = {{ Service = "states.amazonaws.com" }} }}]
  }})
}}
"""
TF_MODULE = """\
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
locals {
  account = data.aws_caller_identity.current.account_id
}
"""


def seed_terraform(directory: Path, files: int, per_module: int = 40) -> int:
    """Write ``files`` .tf files in modules of ``per_module`` files (each module with its data sources)."""
    for index in range(files):
        module = directory / f"module-{index // per_module:03d}"
        if not module.exists():
            module.mkdir()
            (module / "data.tf").write_text(TF_MODULE, encoding="utf-8")
        (module / f"roles-{index:05d}.tf").write_text(TF_FILE.format(n=index), encoding="utf-8")
    return files + -(-files // per_module)


def measure_terraform(directory: Path, rounds: int = 3) -> dict[str, Any]:
    """The best of ``rounds`` runs (a shared machine pauses sometimes), with the CPU time of that run."""
    check_paths([str(directory)], CheckOptions(account=ACCOUNT))  # warm caches and imports, untimed
    runs = []
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        report = check_paths([str(directory)], CheckOptions(account=ACCOUNT))
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    elapsed, cpu = min(runs)
    return {
        "files": report.files,
        "policies": len(report.results),
        "failures": len(report.failures),
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "files_per_second": round(report.files / elapsed),
        "policies_per_second": round(len(report.results) / elapsed),
        "summary": report.summary(),
    }


def measure_in_process(directory: Path) -> dict[str, Any]:
    check_paths([str(directory)], CheckOptions(account=ACCOUNT))  # warm caches and imports, untimed
    start = time.perf_counter()
    report = check_paths([str(directory)], CheckOptions(account=ACCOUNT))
    elapsed = time.perf_counter() - start
    return {
        "files": report.files,
        "policies": len(report.results),
        "failures": len(report.failures),
        "seconds": round(elapsed, 3),
        "policies_per_second": round(len(report.results) / elapsed),
        "summary": report.summary(),
    }


def measure_process(directory: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "deputy_guard.cli",
        "check",
        "--account",
        ACCOUNT,
        "--format",
        "json",
        str(directory),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - start
    results = len(json.loads(done.stdout)["results"]) if done.stdout else 0
    return {
        "exit_code": done.returncode,
        "policies": results,
        "seconds": round(elapsed, 3),
        "policies_per_second": round(results / elapsed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5_000, help="trust-policy files to write (default: 5000)")
    parser.add_argument("--templates", type=int, default=50, help="CloudFormation YAML templates to add (default: 50)")
    parser.add_argument("--tf-files", type=int, default=2_000, help="Terraform .tf files to write (default: 2000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="deputy-guard-bench-") as folder:
        directory = Path(folder)
        seeded = seed(directory, args.files, 0)
        policies_only = measure_in_process(directory)
        seed(directory, 0, args.templates)
        seeded["templates"] = args.templates
        mixed = measure_in_process(directory)
        process = measure_process(directory)
    with tempfile.TemporaryDirectory(prefix="deputy-guard-bench-tf-") as folder:
        seeded["tf_files"] = seed_terraform(Path(folder), args.tf_files)
        terraform = measure_terraform(Path(folder))
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seeded": seeded,
        "in_process_policies": policies_only,
        "in_process_with_templates": mixed,
        "cli_process": process,
        "in_process_terraform": terraform,
        "target_policies_per_second": TARGET_POLICIES,
        "target_tf_files_per_second": TARGET_TF_FILES,
    }
    met = (
        policies_only["policies_per_second"] >= TARGET_POLICIES
        and process["policies_per_second"] >= TARGET_POLICIES
        and terraform["files_per_second"] >= TARGET_TF_FILES
        and not terraform["failures"]
    )
    results["met"] = met
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0 if met else 1


def render(results: dict[str, Any]) -> str:
    seeded = results["seeded"]
    rows = [
        (f"in process, {seeded['policies']:,} policy files", results["in_process_policies"]),
        (f"in process, the same plus {seeded['templates']} YAML templates", results["in_process_with_templates"]),
        ("`deputy-guard check --format json DIR` as a process (start-up included)", results["cli_process"]),
    ]
    lines = ["| run | policies | seconds | policies per second |", "|---|---:|---:|---:|"]
    for label, row in rows:
        lines.append(f"| {label} | {row['policies']:,} | {row['seconds']:.2f} | {row['policies_per_second']:,} |")
    terraform = results["in_process_terraform"]
    lines += [
        "",
        "| run | .tf files | policies | seconds | .tf files per second |",
        "|---|---:|---:|---:|---:|",
        f"| in process, `.tf` files in modules of 41 (best of 3) | {terraform['files']:,} | "
        f"{terraform['policies']:,} | {terraform['seconds']:.2f} | {terraform['files_per_second']:,} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
