"""Where a scan's report goes: one format on stdout, or several files in one run (``--output-dir``).

``--format`` takes a comma-separated list (``json,csv,sarif,asff,html``); ``text`` is another name for
``table``. Without ``--output-dir`` exactly one format is printed; with it, each format is written once to
its own file in the folder. ``--status`` keeps only the roles of the verdicts named, in every format; the
exit status still counts every role.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from chalicelib.domain.models import Verdict
from chalicelib.domain.plan import RoleResult
from deputy_guard.formats import SCAN_FORMATS

FORMAT_ALIASES: Final = {"text": "table"}
STATUSES: Final = tuple(v.value for v in Verdict)
FILE_NAMES: Final = {
    "table": "deputy-guard-scan.txt",
    "json": "deputy-guard-scan.json",
    "csv": "deputy-guard-scan.csv",
    "sarif": "deputy-guard-scan.sarif",
    "asff": "deputy-guard-scan.asff.json",
    "html": "deputy-guard-scan.html",
}


class ListChoices(tuple[str, ...]):
    """argparse choices that also accept a comma-separated list of them (``json,csv``)."""

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        names = [name.strip() for name in value.split(",")]
        return all(name and tuple.__contains__(self, name) for name in names)


FORMAT_CHOICES: Final = ListChoices((*SCAN_FORMATS, *FORMAT_ALIASES))
STATUS_CHOICES: Final = ListChoices(STATUSES)


def names(text: str | None, aliases: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The names of a comma-separated list, each once, in the order given, aliases resolved."""
    found: list[str] = []
    for name in (text or "").split(","):
        name = (aliases or {}).get(name.strip(), name.strip())
        if name and name not in found:
            found.append(name)
    return tuple(found)


def check_request(formats: Sequence[str], output_dir: str | None) -> str | None:
    """Why the formats and the folder cannot go together, or None."""
    if len(formats) > 1 and not output_dir:
        return f"--format {','.join(formats)} writes several files: add --output-dir DIR"
    if output_dir and os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output-dir {output_dir!r} is a file, not a folder"
    return None


def keep(results: Iterable[RoleResult], statuses: Sequence[str]) -> tuple[RoleResult, ...]:
    """The results whose verdict is one of ``statuses`` (all of them when none is named)."""
    return tuple(r for r in results if not statuses or r.verdict.value in statuses)


def filtered_report(report: Any, statuses: Sequence[str]) -> Any:
    """A ScanReport holding only the roles of ``statuses`` (its summary counts what it holds)."""
    return replace(report, results=keep(report.results, statuses)) if statuses else report


def emit(renderers: Mapping[str, Callable[[], str]], output_dir: str | None, write: Callable[[str], Any]) -> None:
    """Print the one format, or write each to its file in ``output_dir`` and print each file's path."""
    if not output_dir:
        [render] = renderers.values()
        write(render())
        return
    os.makedirs(output_dir, exist_ok=True)
    for name, render in renderers.items():
        path = os.path.join(output_dir, FILE_NAMES[name])
        with open(path, "w", encoding="utf-8") as file:
            file.write(render())
        write(f"wrote {path}\n")
