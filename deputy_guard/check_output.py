"""What ``deputy-guard check`` prints: text for people, the JSON of docs/shift-left.md, or SARIF."""

from __future__ import annotations

import json
import re
from typing import Final

from chalicelib.domain.models import Evaluation, Verdict
from chalicelib.domain.policy import render_diff, to_pretty_json
from chalicelib.domain.render import evidence_lines
from deputy_guard.checking import CHECK_SCHEMA_VERSION, PASSING, Failure, Report, Result
from deputy_guard.iac.files import STDIN

__all__ = ["FORMATS", "display_path", "escape_controls", "failure_line", "render", "render_evaluation_text"]

FORMATS: Final = ("text", "json", "sarif")
_STDIN_NAME: Final = "<stdin>"
# Characters a terminal acts on rather than shows (C0 and C1 controls but the newline, and the bidirectional
# overrides): a file name or a logical id holding them could rewrite or hide the lines around it.
_CONTROLS: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``); newlines kept."""
    return _CONTROLS.sub(lambda found: json.dumps(found.group())[1:-1].replace("\\u00", "\\x"), text)


def display_path(path: str) -> str:
    """A path as people read it in messages (stdin has a name)."""
    return _STDIN_NAME if path == STDIN else path


def failure_line(failure: Failure) -> str:
    """One line for stderr: where, which role if any, and what went wrong."""
    where = display_path(failure.path) + (f" ({failure.resource})" if failure.resource else "")
    return escape_controls(" ".join(f"{where}: {failure.message}".split()))


def render_evaluation_text(evaluation: Evaluation) -> str:
    """One policy's verdict, problems and proposed fix, as ``check`` has always printed it."""
    lines = [f"verdict: {evaluation.verdict.value}"]
    for problem in evaluation.problems:
        where = "policy" if problem.statement is None else f"statement {problem.statement}"
        lines.append(f"  [{where}] {problem.code.value}: {problem.message}")
    if evaluation.verdict not in PASSING:
        lines.extend(f"  {line}" for line in evidence_lines(evaluation.services))
    text = "\n".join(lines) + "\n"
    if evaluation.fixed_policy is not None and evaluation.original is not None:
        text += "\nproposed fix:\n" + render_diff(evaluation.original, evaluation.fixed_policy, "current", "fixed")
    return text


def _result_text(result: Result) -> str:
    where = display_path(result.path) + (f":{result.line}" if result.line is not None else "")
    lines = [f"{where}: {result.label}: {result.verdict.value}"]
    for problem in result.problems:
        scope = "policy" if problem.statement is None else f"statement {problem.statement}"
        lines.append(f"  [{scope}] {problem.code.value}: {problem.message}")
    if result.note and not result.passing:
        lines.append(f"  note: {result.note}")
    if not result.passing:
        lines.extend(f"  {line}" for line in evidence_lines(result.services))
    if result.fixed_source is not None:
        lines.append("  proposed fix, as the source writes it:")
        lines.extend(f"    {line}" for line in result.fixed_source.splitlines())
    elif result.fixed_policy is not None and result.original is not None:
        lines.append("  proposed fix:")
        diff = render_diff(result.original, result.fixed_policy, "current", "fixed")
        lines.extend(f"    {line}" for line in diff.splitlines())
    return "\n".join(lines) + "\n"


def summary_line(report: Report) -> str:
    """``N trust policies in M files: counts by verdict``, plus what was skipped or not read."""
    counts = report.summary()
    policies = len(report.results)
    text = f"{policies} trust polic{'y' if policies == 1 else 'ies'} in {report.files} file{'s'[: report.files != 1]}"
    shown = [f"{counts[v.value]} {v.value}" for v in Verdict if counts[v.value]]
    if shown:
        text += ": " + ", ".join(shown)
    extras = []
    if report.skipped:
        extras.append(f"{report.skipped} other file{'s'[: report.skipped != 1]} skipped")
    if report.failures:
        extras.append(f"{len(report.failures)} input{'s'[: len(report.failures) != 1]} not checked (see stderr)")
    return text + ("; " + "; ".join(extras) if extras else "") + "\n"


def _text(report: Report) -> str:
    if report.single:
        return render_evaluation_text(report.results[0].evaluation()) if report.results else ""
    failing = [result for result in report.results if not result.passing]
    return "".join(_result_text(result) + "\n" for result in failing) + summary_line(report)


def _json(report: Report) -> str:
    if report.single:
        if not report.results:
            return ""
        body: object = report.results[0].evaluation().to_dict(with_services=report.with_services)
    else:
        body = {
            "schema_version": CHECK_SCHEMA_VERSION,
            "results": [result.to_dict(with_services=report.with_services) for result in report.results],
            "summary": report.summary(),
            "errors": [
                {"path": failure.path, "resource": failure.resource, "message": failure.message}
                for failure in report.failures
            ],
        }
    # Number literals as the input wrote them: the fixed policy is meant to be pasted back.
    return to_pretty_json(body) + "\n"


def render(report: Report, output: str) -> str:
    """The report in one of ``FORMATS``."""
    if output == "sarif":
        from deputy_guard.sarif import to_sarif

        return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
    return _json(report) if output == "json" else escape_controls(_text(report))
