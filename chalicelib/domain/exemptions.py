"""Central exemptions (DEPUTY_GUARD_EXEMPTIONS), pure: the entries, where they come from, how they match.

The setting holds the entries inline (a comma-separated list of name globs and path prefixes, or a JSON
array), or names a document that holds them: a file (``file:PATH``, or any path ending in .yaml, .yml or
.json) or an SSM parameter (``ssm:NAME`` or the parameter's ARN). A document is a list of entries, or
``{"exemptions": [...]}``, in YAML or JSON; each entry gives an ``account`` (an id, a list of ids, or ``*``),
a ``role`` name glob and/or a ``path`` prefix, a ``reason`` and an ``expires`` date. Reading the document
is I/O, done at the edge (chalicelib.runtime.exemptions); turning its entries into Exemptions is here, and
every error names the entry's line.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from chalicelib.domain.names import valid_account_id

VARIABLE: Final = "DEPUTY_GUARD_EXEMPTIONS"
DOCUMENT_SUFFIXES: Final = (".yaml", ".yml", ".json")
ALL_ACCOUNTS: Final = "*"
_FIELDS: Final = frozenset({"account", "role", "name", "path", "expires", "reason"})


class ExemptionError(ValueError):
    """An exemption entry or document deputy-guard cannot use; the message names the variable and the line."""


class SourceKind(StrEnum):
    FILE = "file"
    PARAMETER = "parameter"  # an SSM parameter, by name or ARN


@dataclass(frozen=True)
class ExemptionSource:
    """Where the exemption document lives, when the setting names one instead of holding the entries."""

    kind: SourceKind
    location: str

    def describe(self) -> str:
        return f"file {self.location}" if self.kind is SourceKind.FILE else f"SSM parameter {self.location}"


@dataclass(frozen=True)
class Exemption:
    """A central exemption: a role-name glob and/or a path prefix, in some accounts or all, until a date."""

    name_glob: str | None = None
    path_prefix: str | None = None
    expires: date | None = None
    reason: str = ""
    accounts: tuple[str, ...] = ()  # empty: every account
    origin: str = ""  # where it was written ("exemptions.yaml line 7"), for messages

    def covers(self, role_name: str, role_path: str, account: str | None = None) -> bool:
        """Whether the entry names the role (its expiry aside)."""
        if self.accounts and account not in self.accounts:
            return False
        if self.name_glob is not None and not fnmatch.fnmatchcase(role_name, self.name_glob):
            return False
        return self.path_prefix is None or role_path.startswith(self.path_prefix)

    def expired(self, today: date) -> bool:
        """An exemption lasts to the end of its ``expires`` day."""
        return self.expires is not None and today > self.expires

    def matches(self, role_name: str, role_path: str, today: date, account: str | None = None) -> bool:
        """True when this exemption covers the role and has not expired."""
        return not self.expired(today) and self.covers(role_name, role_path, account)

    def _what(self) -> str:
        parts = []
        if self.name_glob is not None:
            parts.append(f"name {self.name_glob!r}")
        if self.path_prefix is not None:
            parts.append(f"path {self.path_prefix!r}")
        if self.accounts:
            parts.append(f"account {', '.join(self.accounts)}")
        return ", ".join(parts)

    def _where(self) -> str:
        return f"; {self.origin}" if self.origin else ""

    def describe(self) -> str:
        until = f" until {self.expires.isoformat()}" if self.expires else ""
        because = f": {self.reason}" if self.reason else ""
        return f"central exemption ({self._what()}{until}{self._where()}){because}"

    def describe_lapsed(self) -> str:
        assert self.expires is not None
        because = f" (it said: {self.reason})" if self.reason else ""
        return f"central exemption ({self._what()}{self._where()}) expired on {self.expires.isoformat()}{because}"


def source_of(raw: str) -> ExemptionSource | None:
    """The document the setting names (None: the setting holds the entries itself)."""
    text = raw.strip()
    if text.startswith("file:"):
        return ExemptionSource(SourceKind.FILE, _required(text.removeprefix("file:").strip(), "file:PATH"))
    if text.startswith("ssm:"):
        return ExemptionSource(SourceKind.PARAMETER, _required(text.removeprefix("ssm:").strip(), "ssm:NAME"))
    if text.startswith("arn:") and ":ssm:" in text and ":parameter/" in text:
        return ExemptionSource(SourceKind.PARAMETER, text)
    if "," not in text and text.lower().endswith(DOCUMENT_SUFFIXES):
        return ExemptionSource(SourceKind.FILE, text)
    return None


def _required(value: str, form: str) -> str:
    if not value:
        raise ExemptionError(f"{VARIABLE} must name something after the prefix ({form})")
    return value


def parse_inline(raw: str) -> tuple[Exemption, ...]:
    """The setting's own entries: a JSON array of objects, or a comma-separated list in which an entry
    starting with ``/`` is a path prefix and anything else a role-name glob."""
    text = raw.strip()
    if not text:
        return ()
    if not text.startswith("["):
        entries = [part.strip() for part in text.split(",") if part.strip()]
        return tuple(Exemption(path_prefix=e) if e.startswith("/") else Exemption(name_glob=e) for e in entries)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExemptionError(f"{VARIABLE} is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(items, list):
        raise ExemptionError(f"{VARIABLE} must be a JSON array")
    return tuple(_entry(item, _indexed(index), "") for index, item in enumerate(items))


def _indexed(index: int) -> Callable[[str], str]:
    return lambda key: f"{VARIABLE}[{index}]" + (f".{key}" if key else "")


def parse_json_document(text: str, origin: str) -> tuple[Exemption, ...]:
    """A JSON exemption document; each error names the line of the entry at fault."""
    decoder = _LineDecoder(text)
    try:
        data = decoder.decode(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise ExemptionError(f"{VARIABLE}: {origin} line {exc.lineno}: not valid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise ExemptionError(f"{VARIABLE}: {origin}: nested too deeply") from exc
    return exemptions_from_document(data, origin, decoder.line_of)


def exemptions_from_document(data: Any, origin: str, line_of: Callable[[Any], int | None]) -> tuple[Exemption, ...]:
    """Entries decoded from a document (JSON or YAML) into Exemptions; ``line_of(entry)`` gives its line."""
    if data is None:
        return ()
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"exemptions"})
        if unknown:
            where = _at(origin, line_of(data))
            raise ExemptionError(
                f"{VARIABLE}: {where}: unknown key(s) {', '.join(map(str, unknown))} (want exemptions)"
            )
        data = data.get("exemptions") or []
    if not isinstance(data, list):
        raise ExemptionError(f"{VARIABLE}: {origin}: must be a list of exemptions, or {{exemptions: [...]}}")
    found = []
    for item in data:
        where = _at(origin, line_of(item))
        found.append(_entry(item, _located(f"{VARIABLE}: {where}"), where))
    return tuple(found)


def _located(where: str) -> Callable[[str], str]:
    return lambda key: where + (f": {key}" if key else "")


def _at(origin: str, line: int | None) -> str:
    return f"{origin} line {line}" if line is not None else origin


def _entry(item: Any, where: Callable[[str], str], origin: str) -> Exemption:
    if not isinstance(item, dict):
        raise ExemptionError(f"{where('')} must be an object with role, path, account, reason and expires")
    unknown = set(map(str, item)) - _FIELDS
    if unknown:
        raise ExemptionError(f"{where('')} has unknown field(s): {', '.join(sorted(unknown))}")
    if "role" in item and "name" in item:
        raise ExemptionError(f"{where('')} gives both role and name: they are the same glob, write one")
    name, path = item.get("role", item.get("name")), item.get("path")
    if name is None and path is None:
        raise ExemptionError(f"{where('')} needs a 'role' (or 'name') glob or a 'path' prefix")
    for key in ("role", "name", "path", "reason"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ExemptionError(f"{where(key)} must be a non-empty string")
    if path is not None and not path.startswith("/"):
        raise ExemptionError(f"{where('path')} must start with '/'")
    return Exemption(
        name_glob=name,
        path_prefix=path,
        expires=_expires(item.get("expires"), where),
        reason=item.get("reason") or "",
        accounts=_accounts(item.get("account"), where),
        origin=origin,
    )


def _expires(value: Any, where: Callable[[str], str]) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):  # YAML reads an unquoted 2027-03-31 as a date
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ExemptionError(f"{where('expires')} must be a date YYYY-MM-DD, not {value!r}") from None


def _accounts(value: Any, where: Callable[[str], str]) -> tuple[str, ...]:
    if value is None or value == ALL_ACCOUNTS:
        return ()
    values: Sequence[Any] = value if isinstance(value, list) else [value]
    found = []
    for one in values:
        # YAML reads an unquoted id as a number: fine when it still has its 12 digits.
        text = str(one) if isinstance(one, int) and not isinstance(one, bool) else one
        if not isinstance(text, str) or not valid_account_id(text):
            raise ExemptionError(f"{where('account')} must be a 12-digit account id (quoted), a list of them, or '*'")
        found.append(text)
    return tuple(found)


class _LineDecoder(json.JSONDecoder):
    """json's decoder, noting where each object starts, so an entry's error can name its line."""

    def __init__(self, text: str) -> None:
        from json import decoder, scanner

        super().__init__()
        self._starts: dict[int, int] = {}
        self._newlines = [index for index, char in enumerate(text) if char == "\n"]
        plain: Callable[..., tuple[Any, int]] = decoder.JSONObject  # type: ignore[attr-defined]

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            obj, end = plain(s_and_end, *args)
            self._starts[id(obj)] = s_and_end[1] - 1
            return obj, end

        self.parse_object = parse_object
        self.scan_once = scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def line_of(self, value: Any) -> int | None:
        offset = self._starts.get(id(value))
        return None if offset is None else bisect.bisect_left(self._newlines, offset) + 1
