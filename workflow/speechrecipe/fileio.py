"""Atomic writes and Kaldi-style table files.

Every artifact the recipe produces goes through :func:`atomic_path` or
:func:`atomic_open`: the data is written to a temporary name in the same
directory and renamed over the target only when complete, so an interrupted
job (SIGKILL included) never leaves a file that looks finished. The file ends
with the permissions a plain ``open()`` would give it under the user's umask
(``tempfile`` makes its files private, 0600): on a shared file system,
colleagues read results, checkpoints and models like any other file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    ``suffix`` keeps an extension on the temporary name for libraries that
    insist on one (SentencePiece, torch.save does not care).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, plain_file_mode())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """``open()`` that writes to a temporary file and renames it on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def remove_stale_temporaries(*targets: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of these outputs that a killed earlier write left (:func:`atomic_path`'s names).

    Only call it where nothing else can be writing the same targets (a job of its own outputs,
    under Snakemake's lock). Returns what was removed.
    """
    removed = []
    for target in map(Path, targets):
        for stale in target.parent.glob(f".{target.name}.*.tmp*"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def write_table(path: str | os.PathLike, rows: dict[str, str] | Iterable[tuple[str, str]], sort: bool = True) -> None:
    """Write a Kaldi table (``key value`` per line), sorted by key in C order like ``LC_ALL=C sort``."""
    items = list(rows.items()) if isinstance(rows, dict) else list(rows)
    if sort:
        items.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_open(path) as f:
        for key, value in items:
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


_KEY_END = re.compile(r"[ \t]+")  # what ends a table line's key


def split_key(line: str) -> tuple[str, str]:
    """A table line's key and value, split the way Kaldi splits them.

    The key ends at the first space or tab, the value is the rest of the line without the
    whitespace around it (a wav.scp path may itself hold spaces). Kaldi's readers (awk's
    fields, ``SplitStringOnFirstSpace``) accept a tab or several spaces after the key too.
    A line that starts with whitespace has an empty key.
    """
    key, _, value = _KEY_END.sub(" ", line, count=1).partition(" ")
    return key, value.strip()


def read_table(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi table into a dict (first token is the key, the rest of the line the value).

    Structural problems (duplicates, order) are the validator's business; here
    the last duplicate wins. Like the validator, it reads past a byte-order mark
    and CRLF line ends (``local/kaldi.py`` removes them from what it imports).
    """
    table: dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, value = split_key(line)
            table[key] = value
    return table
