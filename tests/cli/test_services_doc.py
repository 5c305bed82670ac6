"""docs/services.md stays true to the catalogue: one table row per entry, with its level, prefix and evidence."""

from __future__ import annotations

import re
from pathlib import Path

from chalicelib.domain.catalogue import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "services.md"
ROW = re.compile(
    r"^\| `(?P<principal>[^`]+)` \| (?P<level>\w+) \| `(?P<prefix>[^`]+)` \| [^|]+ \| \[[^]]+\]\((?P<url>[^)]+)\)"
)


def test_the_catalogue_table_lists_every_entry_as_the_code_has_it() -> None:
    rows = [m.groupdict() for line in DOC.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))]
    assert rows == [
        {"principal": e.principal, "level": e.level.value, "prefix": e.arn_prefix, "url": e.evidence} for e in CATALOGUE
    ]
