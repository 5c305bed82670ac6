"""`deputy-guard scan --format html`: one self-contained page a person would rather look at than read.

Everything is inline (style, script, the chart as SVG): the file opens from a disk, a mail attachment or
a CI artifact with no server and no network. It holds a summary per account and per verdict with a chart,
then every role: its verdict, problems, owner, the reason for what was done, the diff, and the command
that fixes or reverts it. Filters (verdict, account, text) run in the page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from chalicelib.domain.models import Action, Verdict
from chalicelib.domain.plan import RoleResult
from deputy_guard.report import count_outcomes, plural

VERDICTS: Final = (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW, Verdict.COMPLIANT, Verdict.NOT_APPLICABLE)
# One colour per verdict, for the chart, the legend and the badges (readable on white, distinct in grey).
COLOURS: Final = {
    Verdict.NON_COMPLIANT: "#c62828",
    Verdict.NEEDS_REVIEW: "#ef6c00",
    Verdict.COMPLIANT: "#2e7d32",
    Verdict.NOT_APPLICABLE: "#78909c",
}
CHART_WIDTH: Final = 640
BAR_HEIGHT: Final = 22
LABEL_WIDTH: Final = 130

_STYLE: Final = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1c1c1c;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:0 0 8px}
.meta{color:#555;margin:0 0 12px}
section.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left;overflow-wrap:anywhere}
td.n,th.n{text-align:right}
svg{max-width:100%;height:auto;display:block}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:middle}
.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
.filters label{white-space:nowrap}
.filters input[type=search]{min-width:0;width:220px;max-width:100%}
details.role{background:#fff;border:1px solid #dde1e6;border-left-width:6px;border-radius:4px;
  margin:6px 0;padding:6px 10px}
details.role>summary{cursor:pointer;overflow-wrap:anywhere}
.badge{display:inline-block;color:#fff;border-radius:3px;padding:0 6px;font-size:12px;margin-right:6px}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px;margin:8px 0}
dt{color:#555}dd{margin:0;overflow-wrap:anywhere}
pre{background:#f3f4f6;border-radius:4px;padding:8px;margin:6px 0;font-size:12px;
  white-space:pre-wrap;overflow-wrap:anywhere}
code{font-size:12px;overflow-wrap:anywhere}
.add{color:#1b5e20;background:#e8f5e9}
.del{color:#b71c1c;background:#ffebee}
.hidden{display:none}
.failed{color:#b71c1c}
"""

_SCRIPT: Final = """
(function(){
  var roles=[].slice.call(document.querySelectorAll('details.role'));
  var boxes=[].slice.call(document.querySelectorAll('input[name=verdict]'));
  var account=document.getElementById('account'), text=document.getElementById('text');
  var shown=document.getElementById('shown');
  function apply(){
    var verdicts={};boxes.forEach(function(b){if(b.checked)verdicts[b.value]=true;});
    var want=account.value, words=text.value.toLowerCase().trim(), count=0;
    roles.forEach(function(r){
      var ok=verdicts[r.dataset.verdict]&&(!want||r.dataset.account===want)&&
        (!words||r.textContent.toLowerCase().indexOf(words)>=0);
      r.classList.toggle('hidden',!ok); if(ok)count++;
    });
    shown.textContent=count;
  }
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  account.addEventListener('change',apply); text.addEventListener('input',apply);
  apply();
})();
"""


@dataclass(frozen=True)
class AccountPart:
    """One account's part of the page: its roles (after any --status filter), or why it was not scanned."""

    account: str
    results: tuple[RoleResult, ...] = ()
    error: str | None = None


def generated_at(now: datetime | None = None) -> str:
    """When the report was made, as the page says it."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")


def render_html(parts: Sequence[AccountPart], *, generated: str, version: str, many: bool) -> str:
    """The whole page. ``many``: the run scanned several accounts (the commands then name the account)."""
    esc = html.escape
    roles = [(part.account, result) for part in parts for result in part.results]
    counted = sum(len(part.results) for part in parts)
    accounts = sorted({part.account for part in parts})
    body = [
        "<main>",
        "<h1>deputy-guard scan report</h1>",
        f'<p class="meta">{esc(plural(len(parts), "account"))}, {esc(plural(counted, "role"))} · '
        f"generated {esc(generated)} by deputy-guard {esc(version)}</p>",
        _summary(parts),
        '<section class="card"><h2>Roles</h2><div class="filters">',
        *(
            f'<label><input type="checkbox" name="verdict" value="{v.value}"'
            f"{' checked' if v in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW) else ''}> {esc(v.value)}</label>"
            for v in VERDICTS
        ),
        '<label>account <select id="account"><option value="">all</option>'
        + "".join(f'<option value="{esc(a)}">{esc(a)}</option>' for a in accounts)
        + "</select></label>",
        '<label>search <input type="search" id="text" placeholder="role, problem, owner"></label>',
        f'<span><b id="shown">{counted}</b> of {counted} shown</span></div>',
        *(_role(account, result, many) for account, result in roles),
        "</section></main>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>deputy-guard scan report</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + f"\n<script>{_SCRIPT}</script></body></html>\n"
    )


def _summary(parts: Sequence[AccountPart]) -> str:
    esc = html.escape
    head = "".join(f'<th class="n">{esc(v.value)}</th>' for v in VERDICTS)
    rows = []
    totals = dict.fromkeys(VERDICTS, 0)
    for part in parts:
        counts = _verdicts(part.results)
        for verdict, count in counts.items():
            totals[verdict] += count
        if part.error is not None:
            cells = f'<td colspan="{len(VERDICTS) + 1}" class="failed">not scanned: {esc(part.error)}</td>'
        else:
            outcomes = count_outcomes([r.to_report() for r in part.results])
            cells = (
                "".join(
                    f'<td class="n" data-account="{esc(part.account)}" data-verdict="{v.value}">{counts[v]}</td>'
                    for v in VERDICTS
                )
                + f"<td>{esc(', '.join(f'{n} {name}' for name, n in outcomes.items()) or 'no roles')}</td>"
            )
        rows.append(f"<tr><th>{esc(part.account)}</th>{cells}</tr>")
    total_cells = "".join(f'<td class="n" data-total="{v.value}">{totals[v]}</td>' for v in VERDICTS)
    rows.append(f"<tr><th>all accounts</th>{total_cells}<td></td></tr>")
    legend = "".join(
        f'<span><i class="swatch" style="background:{COLOURS[v]}"></i>{esc(v.value)}</span>' for v in VERDICTS
    )
    return (
        '<section class="card"><h2>Summary</h2>'
        f'<table id="summary"><colgroup><col style="width:16%">{"<col>" * len(VERDICTS)}<col style="width:36%">'
        f"</colgroup><thead><tr><th>account</th>{head}<th>what happened</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f'{_chart(parts)}<p class="legend">{legend}</p></section>'
    )


def _verdicts(results: Sequence[RoleResult]) -> dict[Verdict, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for result in results:
        counts[result.verdict] += 1
    return counts


def _chart(parts: Sequence[AccountPart]) -> str:
    """One stacked bar per account, its length the account's roles, each verdict its own colour."""
    esc = html.escape
    widest = max((len(part.results) for part in parts), default=0) or 1
    span = CHART_WIDTH - LABEL_WIDTH - 50
    bars = []
    for row, part in enumerate(parts):
        y = row * (BAR_HEIGHT + 6)
        bars.append(f'<text x="0" y="{y + 15}" font-size="12">{esc(part.account)}</text>')
        x = float(LABEL_WIDTH)
        for verdict, count in _verdicts(part.results).items():
            if not count:
                continue
            width = span * count / widest
            bars.append(
                f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="{COLOURS[verdict]}">'
                f"<title>{esc(part.account)}: {count} {verdict.value}</title></rect>"
            )
            x += width
        bars.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{len(part.results)}</text>')
    height = max(1, len(parts)) * (BAR_HEIGHT + 6)
    return (
        f'<svg id="chart" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" role="img" '
        f'aria-label="roles per account and verdict">{"".join(bars)}</svg>'
    )


def _role(account: str, result: RoleResult, many: bool) -> str:
    esc = html.escape
    colour = COLOURS[result.verdict]
    codes = sorted({p.code.value for p in result.evaluation.problems})
    facts = [("account", account), ("role", result.role_arn), ("action", result.action.value)]
    if result.reason:
        facts.append(("reason", result.reason))
    facts.append(("owner", result.owner or "unknown (no owner tag)"))
    if result.change_id:
        facts.append(("change", result.change_id))
    command = _command(account, result, many)
    if command:
        facts.append(("command", command))
    listed = "".join(
        f"<dt>{esc(name)}</dt><dd>{f'<code>{esc(value)}</code>' if name == 'command' else esc(value)}</dd>"
        for name, value in facts
    )
    problems = "".join(
        f"<li><code>{esc(problem.code.value)}</code> {esc(problem.message)}</li>"
        for problem in result.evaluation.problems
    )
    # A finding opens on its diff and command; a role with nothing to do stays one line.
    opened = " open" if result.verdict in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW) else ""
    return (
        f'<details class="role" data-verdict="{result.verdict.value}" data-account="{esc(account)}"{opened} '
        f'style="border-left-color:{colour}"><summary><span class="badge" style="background:{colour}">'
        f"{esc(result.verdict.value)}</span><b>{esc(result.role_name)}</b> · {esc(account)} · "
        f"{esc(result.action.value)}{' · ' + esc(', '.join(codes)) if codes else ''}</summary>"
        f"<dl>{listed}</dl>{f'<ul>{problems}</ul>' if problems else ''}{_diff(result.diff)}</details>"
    )


def _command(account: str, result: RoleResult, many: bool) -> str:
    """What a person runs next for this role, if anything."""
    where = f" --account {account}" if many else ""
    if result.action is Action.FIXED:
        return f"deputy-guard revert {result.role_name}{where}"
    if result.verdict is Verdict.NON_COMPLIANT and result.action is not Action.EXEMPT:
        scope = f" --accounts {account}" if many else ""
        return f"deputy-guard scan --fix{scope} --role {result.role_name}"
    return ""


def _diff(diff: str) -> str:
    if not diff:
        return ""
    lines = []
    for line in diff.splitlines():
        text = html.escape(line)
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(f'<span class="add">{text}</span>')
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(f'<span class="del">{text}</span>')
        else:
            lines.append(text)
    return "<pre>" + "\n".join(lines) + "</pre>"
