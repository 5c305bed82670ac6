"""Central exemptions kept in a document (a file or an SSM parameter): parsing, line-numbered errors, expiry.

The documents are written here in the shape the operations guide shows (a list under ``exemptions:``,
each entry with account, role glob, reason and expiry, in the spirit of Prowler's mutelist).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.exemptions import Exemption, ExemptionSource, SourceKind, source_of
from chalicelib.domain.models import Action, Evaluation, Mode, Problem, ProblemCode, RoleRecord, Verdict
from chalicelib.domain.plan import Run, decide
from chalicelib.domain.settings import Settings, SettingsError, load_settings
from chalicelib.runtime.exemptions import LiveExemptions, parse_document, with_exemptions

MEMBER = "444455556666"
OTHER = "777788889999"
TODAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FINDING = Evaluation(Verdict.NON_COMPLIANT, (Problem(ProblemCode.MISSING_SOURCE_ACCOUNT, 0, "no pin"),))

YAML_DOCUMENT = """\
# exemptions reviewed by the platform team
exemptions:
  - account: "444455556666"
    role: legacy-*
    reason: retired at the end of the quarter
    expires: 2027-03-31
  - role: batch-old-*
    reason: replaced by the new pipeline
    expires: 2026-11-30
  - path: /sandbox/
    account: ["444455556666", "777788889999"]
    reason: sandbox accounts
"""


def role(name: str, account: str = MEMBER, path: str = "/") -> RoleRecord:
    return RoleRecord(name=name, arn=f"arn:aws:iam::{account}:role{path}{name}", path=path, document={})


def settings_from(text: str, origin: str = "exemptions.yaml") -> Settings:
    return Settings(exemptions=parse_document(text, origin))


def test_a_yaml_document_gives_each_entry_its_account_glob_reason_expiry_and_line() -> None:
    # Given the document above
    # When it is parsed
    entries = parse_document(YAML_DOCUMENT, "exemptions.yaml")
    # Then each entry holds what it says, and where it was written
    assert entries[0] == Exemption(
        name_glob="legacy-*",
        expires=date(2027, 3, 31),
        reason="retired at the end of the quarter",
        accounts=(MEMBER,),
        origin="exemptions.yaml line 3",
    )
    assert entries[1].accounts == () and entries[1].origin == "exemptions.yaml line 7"
    assert entries[2].accounts == (MEMBER, OTHER) and entries[2].path_prefix == "/sandbox/"


def test_an_entry_for_one_account_exempts_the_role_there_only() -> None:
    settings = settings_from(YAML_DOCUMENT)
    # When the same role name is decided in the listed account and in another one
    here = decide(FINDING, role("legacy-etl"), settings=settings, run=Run(Mode.ENFORCE, "t", 50), today=TODAY)
    there = decide(FINDING, role("legacy-etl", OTHER), settings=settings, run=Run(Mode.ENFORCE, "t", 50), today=TODAY)
    # Then only the listed account's role is exempt, with the entry's reason and line
    assert here[0] is Action.EXEMPT and "exemptions.yaml line 3" in here[1] and "end of the quarter" in here[1]
    assert there[0] is Action.FIXED


def test_an_expired_entry_is_reported_in_the_reason_and_no_longer_exempts() -> None:
    settings = settings_from(YAML_DOCUMENT)
    # When a role the expired entry names is decided
    action, reason = decide(
        FINDING, role("batch-old-report"), settings=settings, run=Run(Mode.NOTIFY, "t", 50), today=TODAY
    )
    # Then it is handled as any finding, and the reason says the exemption lapsed and when
    assert action is Action.NOTIFIED
    assert "expired on 2026-11-30" in reason and "exemptions.yaml line 7" in reason


def test_a_json_document_is_read_too_with_its_lines() -> None:
    text = '{\n  "exemptions": [\n    {"role": "a-*", "reason": "r"},\n    {"role": "b-*", "account": "*"}\n  ]\n}\n'
    entries = parse_document(text, "exemptions.json")
    assert [(e.name_glob, e.origin) for e in entries] == [
        ("a-*", "exemptions.json line 3"),
        ("b-*", "exemptions.json line 4"),
    ]


@pytest.mark.parametrize(
    ("text", "origin", "expected"),
    [
        # an entry's bad value: the entry's line
        (
            "exemptions:\n  - role: a\n  - role: b\n    expires: someday\n",
            "x.yaml",
            "x.yaml line 3: expires must be a date",
        ),
        ("- role: a\n- role: b\n  acount: '444455556666'\n", "x.yaml", "x.yaml line 2 has unknown field(s): acount"),
        ("- role: a\n  account: 12345\n", "x.yaml", "x.yaml line 1: account must be a 12-digit account id"),
        ("- reason: nothing named\n", "x.yaml", "x.yaml line 1 needs a 'role'"),
        ("- role: a\n  path: sandbox\n", "x.yaml", "x.yaml line 1: path must start with '/'"),
        # a syntax error: its own line
        ("exemptions:\n  - role: a\n   reason: [unclosed\n", "x.yaml", "x.yaml line 3: not valid YAML"),
        ('[\n  {"role": "a"},\n  {"role": "b",}\n]\n', "x.json", "x.json line 3: not valid JSON"),
        ('[\n  {"role": "a"},\n  {"role": "b", "expires": "2027-13-01"}\n]\n', "x.json", "x.json line 3: expires"),
        # the document's shape
        ("exemptions: {role: a}\n", "x.yaml", "must be a list of exemptions"),
        ("mutelist: []\n", "x.yaml", "x.yaml line 1: unknown key(s) mutelist"),
    ],
)
def test_a_bad_document_is_refused_naming_the_variable_and_the_line(text: str, origin: str, expected: str) -> None:
    from chalicelib.domain.exemptions import ExemptionError

    with pytest.raises(ExemptionError) as caught:
        parse_document(text, origin)
    assert str(caught.value).startswith("DEPUTY_GUARD_EXEMPTIONS: ")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "source"),
    [
        ("file:exemptions", ExemptionSource(SourceKind.FILE, "exemptions")),
        ("./policy/exemptions.yaml", ExemptionSource(SourceKind.FILE, "./policy/exemptions.yaml")),
        ("/etc/deputy-guard/exemptions.JSON", ExemptionSource(SourceKind.FILE, "/etc/deputy-guard/exemptions.JSON")),
        ("ssm:/deputy-guard/exemptions", ExemptionSource(SourceKind.PARAMETER, "/deputy-guard/exemptions")),
        (
            "arn:aws:ssm:us-east-1:111122223333:parameter/deputy-guard/exemptions",
            ExemptionSource(
                SourceKind.PARAMETER, "arn:aws:ssm:us-east-1:111122223333:parameter/deputy-guard/exemptions"
            ),
        ),
        ("legacy-*,/sandbox/", None),
        ('[{"name": "legacy-*"}]', None),
    ],
)
def test_the_setting_names_a_file_or_a_parameter_or_holds_the_entries(raw: str, source: Any) -> None:
    assert source_of(raw) == source


def test_the_inline_forms_keep_working() -> None:
    settings = load_settings({"DEPUTY_GUARD_EXEMPTIONS": '[{"name": "legacy-*", "account": "444455556666"}]'})
    assert settings.exemptions_source is None
    assert settings.exemptions[0].accounts == (MEMBER,)
    assert load_settings({"DEPUTY_GUARD_EXEMPTIONS": "legacy-*"}).exemptions == (Exemption(name_glob="legacy-*"),)


def test_a_named_file_is_read_at_the_edge_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "exemptions.yaml"
    path.write_text(YAML_DOCUMENT, encoding="utf-8")
    settings = load_settings({"DEPUTY_GUARD_EXEMPTIONS": str(path)})
    # The pure settings only know where the document is
    assert settings.exemptions == () and settings.exemptions_source == ExemptionSource(SourceKind.FILE, str(path))
    loaded = with_exemptions(settings, read_parameter=_no_parameter)
    assert len(loaded.exemptions) == 3 and loaded.exemptions[0].origin == f"{path} line 3"
    missing = load_settings({"DEPUTY_GUARD_EXEMPTIONS": str(tmp_path / "gone.yaml")})
    with pytest.raises(SettingsError, match=r"DEPUTY_GUARD_EXEMPTIONS: cannot read the file .*gone\.yaml"):
        with_exemptions(missing, read_parameter=_no_parameter)


def _no_parameter(name: str) -> str:
    raise AssertionError(f"no parameter should be read, asked for {name}")


class _Logger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        return None

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.errors.append(msg)


def test_a_live_parameter_is_parsed_again_only_when_it_changes_and_a_bad_edit_keeps_the_last_good_list() -> None:
    # Given the bot's settings naming an SSM parameter, and its successive values
    values = ['[{"role": "a-*"}]', '[{"role": "a-*"}]', '[{"role": "b-*"}]', '[{"role": "b-*", "expires": "x"}]']
    reads: list[str] = []

    def read(name: str) -> str:
        reads.append(name)
        return values[len(reads) - 1]

    base = load_settings({"DEPUTY_GUARD_EXEMPTIONS": "ssm:/deputy-guard/exemptions"})
    live, logger = LiveExemptions(read), _Logger()
    first = live.current(base, logger)
    # When the value is unchanged, the same settings come back; when it changes, new ones
    assert live.current(base, logger) is first
    second = live.current(base, logger)
    assert [e.name_glob for e in second.exemptions] == ["b-*"] and reads == ["/deputy-guard/exemptions"] * 3
    # And an edit that does not validate keeps the last good entries, logged as an error
    assert live.current(base, logger) is second and len(logger.errors) == 1


def test_a_parameter_that_never_validated_is_a_settings_error() -> None:
    base = load_settings({"DEPUTY_GUARD_EXEMPTIONS": "ssm:/deputy-guard/exemptions"})
    with pytest.raises(SettingsError, match="line 1"):
        LiveExemptions(lambda _name: '[{"path": "nope"}]').current(base, _Logger())


def test_yaml_dates_and_unquoted_account_ids_are_understood() -> None:
    (entry,) = parse_document("- role: a\n  account: 444455556666\n  expires: 2027-01-31\n", "x.yaml")
    assert entry.accounts == (MEMBER,) and entry.expires == date(2027, 1, 31)
