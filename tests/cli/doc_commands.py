"""Every `deputy-guard ...` command the docs show, checked against the CLI's own parser.

Commands are taken from fenced code blocks and inline code in README.md and docs/*.md. A synopsis
(``scan [--fix] [--format table|json]``) is checked word by word: the subcommands, every flag, and every
value a flag or positional with fixed choices is shown with. A concrete command (no placeholder) must
parse as it is written. The parser is built by ``build_parser()``, so new subcommands and flags count
as soon as they exist.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROG = "deputy-guard"
_FENCE = re.compile(r"^```.*?$(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`([^`\n]+)`")
_START = re.compile(r"(?<![\w/.-])(?:\S*/)?deputy-guard(?=\s)")
# Where a command can start: a line (after a prompt, `- `, or VAR=value words), after a pipe, `&&`, `;`,
# `$(`, or `run:`. Elsewhere (a message quoted in an example) `deputy-guard` is prose.
_COMMAND_POSITION = re.compile(r"(?:^\s*(?:[$>]\s*|-\s+)?(?:\w+=\S*\s+)*|(?:\||&&|;|\$\(|\brun:|\bentry:)\s*)$")
_BREAKS = re.compile(r"\s(?:\||&&|;|>|<|2>|#)|\$\(|\)")
_COMMAND_WORD = re.compile(r"^(?:\[?-{1,2}[a-zA-Z]|[a-z][a-z-]*(?:\|[a-z-]+)*$)")
# Words that stand for a value: ROLE, NAME, ID, PATH..., <role>, a shell variable.
_PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:\.\.\.)?|<[^>]+>|\$\{?\w+\}?|\.\.\.|…)$")


@dataclass(frozen=True)
class DocCommand:
    """One command as a doc shows it."""

    source: str  # file:line
    text: str  # from `deputy-guard` to the end of the command
    in_block: bool = False  # from a fenced code block (inline code may name a command without its arguments)

    @property
    def words(self) -> list[str]:
        try:
            return shlex.split(self.text)
        except ValueError:
            return self.text.split()

    @property
    def concrete(self) -> bool:
        """Whether it is a command one could type as it is (no synopsis brackets, choices or placeholders)."""
        if any(mark in self.text for mark in ("[", "]", "|", "...", "…", "{", "}")):
            return False
        return not any(_PLACEHOLDER.match(word) for word in self.words[1:])


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def commands_in(path: Path) -> Iterator[DocCommand]:
    """The commands of one Markdown file: in fenced blocks (line by line) and in inline code."""
    text = path.read_text(encoding="utf-8")
    fenced: list[tuple[int, str]] = []
    for block in _FENCE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        fenced += [(first + offset, line) for offset, line in enumerate(block.group(1).splitlines())]
    outside = _FENCE.sub(lambda found: "\n" * found.group(0).count("\n"), text)
    inline = [(text.count("\n", 0, found.start()) + 1, found.group(1)) for found in _INLINE.finditer(outside)]
    for number, line, in_block in [(n, line, True) for n, line in fenced] + [(n, line, False) for n, line in inline]:
        # A continued line: `\` at the end joins the next words of the same command (kept to this line).
        line = line.rstrip().removesuffix("\\")
        for found in _START.finditer(line):
            before = line[: found.start()]
            if not _COMMAND_POSITION.search(before) or before.count('"') % 2:
                continue  # prose: a message quoted in an example, a sentence in a code span
            rest = line[found.start() :]
            command = _cut(PROG + rest[rest.index(PROG) + len(PROG) :])
            words = command.split()
            if len(words) > 1 and not _COMMAND_WORD.match(words[1]):
                continue  # `deputy-guard digest: ...`: a message, not a command
            yield DocCommand(f"{path.name}:{number}", command, in_block)


def _cut(text: str) -> str:
    """The command up to the first pipe, `&&`, `;`, redirection or comment outside a synopsis's brackets."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth <= 0 and _BREAKS.match(text, index):
            return text[:index].strip()
    return text.strip()


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def _alternatives(word: str) -> list[str]:
    return [part for part in re.split(r"[|,]", word.strip("[]")) if part]


def problems(command: DocCommand, parser: argparse.ArgumentParser) -> list[str]:
    """What in ``command`` the parser does not know: an empty list when the doc is right."""
    found: list[str] = []
    node = parser
    words = command.words[1:]
    positional = [a for a in node._actions if not a.option_strings and a.choices]
    index = 0
    while index < len(words):
        word = words[index].strip("[]")
        index += 1
        if not word or word in ("...", "…", "-") or _PLACEHOLDER.match(word):
            continue
        if word.startswith("--"):
            name, _, inline_value = word.partition("=")
            action = _options(node).get(name) or _options(parser).get(name)
            if action is None:
                found.append(f"{command.source}: `{command.text}`: no option {name} for `{node.prog}`")
                continue
            if action.nargs == 0:
                continue
            value = inline_value or (words[index] if index < len(words) else "")
            if not inline_value:
                index += 1
            if action.choices is not None and value and not _PLACEHOLDER.match(value.strip("[]")):
                for choice in _alternatives(value):
                    if choice not in action.choices:
                        found.append(f"{command.source}: `{command.text}`: {name} takes no {choice!r}")
            continue
        if word.startswith("-"):
            if word not in _options(node) and word not in _options(parser):
                found.append(f"{command.source}: `{command.text}`: no option {word} for `{node.prog}`")
            continue
        children = subparsers(node)
        if children:
            missing = [name for name in _alternatives(word) if name not in children]
            if missing:
                found.append(f"{command.source}: `{command.text}`: `{node.prog}` has no command {missing[0]!r}")
                return found
            node = children[_alternatives(word)[0]]
            positional = [a for a in node._actions if not a.option_strings and a.choices]
            continue
        if positional and not word.startswith(("/", ".")):
            action = positional.pop(0)
            assert action.choices is not None
            bad = [choice for choice in _alternatives(word) if choice not in action.choices]
            if bad:
                found.append(f"{command.source}: `{command.text}`: {action.dest} takes no {bad[0]!r}")
    return found
