"""Scan reports for people (the CLI's table, the demo's story)."""

from __future__ import annotations

from typing import Any


def render_table(report: dict[str, Any]) -> str:
    """A scan report for people: one line per role (verdict, role, problems, action) and a summary."""
    rows = [("VERDICT", "ROLE", "PROBLEMS", "ACTION")]
    for result in report["results"]:
        codes = ",".join(sorted({p["code"] for p in result["problems"]})) or "-"
        rows.append((result["verdict"], result["role_name"], codes, result["action"]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    summary = ", ".join(f"{count} {verdict}" for verdict, count in report["summary"].items() if count)
    lines.append("")
    lines.append(f"account {report['account'] or '?'}: {len(report['results'])} roles ({summary or 'none'})")
    for name in report.get("missing", []):
        lines.append(f"not found: {name}")
    return "\n".join(lines)
