"""The docs show only commands the CLI has: every `deputy-guard ...` in README.md and docs/*.md, against the
parser the CLI itself builds (subcommands, flags, the values of flags with fixed choices)."""

from __future__ import annotations

import pytest

from deputy_guard.cli import UsageError, build_parser
from tests.cli.doc_commands import DocCommand, commands_in, doc_files, problems

COMMANDS = [command for path in doc_files() for command in commands_in(path)]


def test_the_docs_are_read_for_their_commands() -> None:
    # The extraction finds the commands a reader meets (a broken extractor must not pass as "no problem")
    texts = {command.text for command in COMMANDS}
    assert len(COMMANDS) >= 40
    assert {"deputy-guard check -", "deputy-guard setup", "deputy-guard scan --fix"} <= texts
    assert {command.source.split(":")[0] for command in COMMANDS} >= {"README.md", "deployment.md", "shift-left.md"}


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.source} {c.text}" for c in COMMANDS])
def test_every_command_in_the_docs_is_one_the_cli_has(command: DocCommand) -> None:
    assert problems(command, build_parser()) == []


CONCRETE = [command for command in COMMANDS if command.in_block and command.concrete]


@pytest.mark.parametrize("command", CONCRETE, ids=[f"{c.source} {c.text}" for c in CONCRETE])
def test_every_runnable_command_in_a_code_block_parses_as_written(command: DocCommand) -> None:
    try:
        build_parser().parse_args(command.words[1:])
    except UsageError as exc:
        pytest.fail(f"{command.source}: `{command.text}`: {exc}")
    except SystemExit as done:  # --help, --version
        assert done.code in (0, None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("deputy-guard frobnicate ROLE", "no command 'frobnicate'"),
        ("deputy-guard scan --format table|pdf", "--format takes no 'pdf'"),
        ("deputy-guard scan --no-such-flag", "no option --no-such-flag"),
        ("deputy-guard api scans|purge", "no command 'purge'"),
        ("deputy-guard completion fish", "takes no 'fish'"),
        ("deputy-guard demo [--mode enforce|panic]", "--mode takes no 'panic'"),
    ],
)
def test_a_wrong_command_in_a_doc_is_found(text: str, says: str) -> None:
    [problem] = problems(DocCommand("example.md:1", text, True), build_parser())
    assert says in problem
