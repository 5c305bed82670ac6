"""Reading the inputs of ``check`` at a bounded cost: named files, stdin, and directory walks.

A repository is hostile input: a pull request can commit a symbolic link to ``/dev/zero``, a FIFO, or a
file of any size. So a walk opens regular files only, follows no symbolic link that leaves the walked
directory, and every read stops one byte past a size limit (``--max-file-size``); each refusal is one
line of text, never a traceback.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from deputy_guard.iac.site import InputError

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "STDIN",
    "TERRAFORM_SUFFIX",
    "WALKED_SUFFIXES",
    "Walked",
    "module_files",
    "parse_size",
    "read_text",
    "walk",
]

STDIN: Final = "-"
TERRAFORM_SUFFIX: Final = ".tf"
# What a directory walk opens; everything else is skipped without being read.
WALKED_SUFFIXES: Final = (".json", ".yaml", ".yml", ".template", TERRAFORM_SUFFIX)
# Far above any template CloudFormation accepts (1 MB) and most Terraform plans; raise it for huge plans.
DEFAULT_MAX_FILE_SIZE: Final = 20 * 1024 * 1024


_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """A size in bytes from ``2000000``, ``512k``, ``20M`` or ``1G`` (binary units); ValueError otherwise."""
    cleaned = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"not a size in bytes (such as 2000000, 512k, 20M): {text!r}")
    return int(number) * _UNITS[unit]


@dataclass(frozen=True)
class Walked:
    """A file a walk found: its path, and why it must not be read (None when it may)."""

    path: str
    refusal: str | None = None


def _too_large(limit: int) -> str:
    return f"larger than {limit} bytes: not read (raise the limit with --max-file-size)"


_CHUNK: Final = 1 << 16


def _read_bounded(handle: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes, read in chunks (asking for ``limit`` at once would allocate it every time)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := handle.read(min(_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise InputError(_too_large(limit))
    return b"".join(chunks)


def _read_text_bounded(limit: int) -> bytes:
    text = sys.stdin.read(limit + 1)
    if len(text) > limit:
        raise InputError(_too_large(limit))
    return text.encode("utf-8", "surrogatepass")


def read_text(name: str, limit: int = DEFAULT_MAX_FILE_SIZE) -> str:
    """The text of a file, or of stdin for ``-``, at most ``limit`` bytes; InputError (one line) otherwise."""
    try:
        if name == STDIN:
            binary = getattr(sys.stdin, "buffer", None)
            # A text stream without bytes beneath (an embedding program's stdin) is bounded in characters.
            data = _read_bounded(binary, limit) if binary is not None else _read_text_bounded(limit)
        else:
            with open(name, "rb") as handle:
                data = _read_bounded(handle, limit)
        text = data.decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError("cannot read: not UTF-8 text") from exc
    # Editors on some systems save a byte-order mark, which the JSON parser rejects.
    return text.removeprefix("\ufeff")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _refusal(path: str, root: str, limit: int) -> str | None:
    """Why a walked file must not be read, if it must not."""
    try:
        status = os.lstat(path)
        if stat.S_ISLNK(status.st_mode):
            if not _inside(os.path.realpath(path), root):
                return "a symbolic link out of the checked directory: not followed"
            status = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file: not read"
    if status.st_size > limit:
        return _too_large(limit)
    return None


def walk(directory: str, limit: int = DEFAULT_MAX_FILE_SIZE) -> Iterator[Walked]:
    """The files of a directory that ``check`` reads, in a stable order, each with its refusal if any.

    Hidden folders and files are skipped, and so are folder links (``os.walk`` does not follow them).
    """
    root = os.path.realpath(directory)
    for folder, folders, files in os.walk(directory):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(WALKED_SUFFIXES):
                path = os.path.join(folder, name)
                yield Walked(path, _refusal(path, root, limit))


def module_files(directory: str, limit: int = DEFAULT_MAX_FILE_SIZE) -> list[Walked]:
    """The ``.tf`` files of one Terraform module (a directory, not walked further), with their refusals."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        return [Walked(directory, f"cannot read: {exc.strerror or exc}")]
    root = os.path.realpath(directory)
    return [
        Walked(path, _refusal(path, root, limit))
        for name in names
        if name.endswith(TERRAFORM_SUFFIX) and not name.startswith(".")
        for path in [os.path.join(directory, name)]
    ]
