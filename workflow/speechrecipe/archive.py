"""Kaldi feature archives (``.ark``) and their indexes (``.scp``), through kaldiio.

:func:`matrix_writer` writes an archive and its index so that an interrupted job never
leaves a pair that looks complete: both are written under temporary names, the archive is
renamed into place first and its index (which names the archive) last. Readers name the
damaged archive in an :class:`ArchiveError`; what to do about it (remove it, rebuild it)
is the caller's decision.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .fileio import atomic_path, read_table


class ArchiveError(ValueError):
    """A Kaldi archive is missing, truncated or corrupt; ``archive`` is its path when known."""

    def __init__(self, message: str, archive: Path | None = None):
        super().__init__(message)
        self.archive = archive


@contextlib.contextmanager
def matrix_writer(ark: str | Path, scp: str | Path) -> Iterator:
    """A kaldiio writer, ``writer(key, matrix)``, of ``ark`` and its index ``scp``, both written atomically."""
    import kaldiio

    ark, scp = Path(ark), Path(scp)
    with atomic_path(scp) as tmp_scp:
        with atomic_path(ark) as tmp_ark, kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            yield writer
        # The archive is in place; now its index, which names the archive it was written to:
        # point it at the final name, and rename it last.
        lines = tmp_scp.read_text().splitlines()
        tmp_scp.write_text("".join(line.replace(str(tmp_ark), str(ark)) + "\n" for line in lines))


def archive_of(entry: str) -> Path:
    """The archive a ``feats.scp`` value (``path/feats.3.ark:1234``) points into."""
    return Path(entry.rpartition(":")[0])


_OPEN: dict[int, dict[str, object]] = {}  # process id -> archive path -> open file


def _open_archives() -> dict[str, object]:
    """This process's open archives. Kept per process: a file opened before a fork shares its position
    with the child, and two processes seeking in one descriptor would read each other's matrices."""
    return _OPEN.setdefault(os.getpid(), {})


def load_matrix(entry: str) -> np.ndarray:
    """One matrix of an archive, by its scp value; :class:`ArchiveError` when the archive is damaged.

    kaldiio reads a truncated file into a short buffer and fails with whatever numpy or struct
    says (or, for a cut exactly between matrices, only at the offset past the end): both are
    turned into one error that names the archive. Archives stay open (per process) between calls:
    a training job reads every matrix of its archives once per epoch.
    """
    import kaldiio

    path, _, offset = entry.rpartition(":")
    if not Path(path).is_file():
        raise ArchiveError(f"{path} does not exist", Path(path))
    size = Path(path).stat().st_size
    if not offset.isdigit() or int(offset) >= size:
        raise ArchiveError(f"{path}: offset {offset} is past its end ({size} bytes): truncated", Path(path))
    try:
        return np.asarray(kaldiio.load_mat(entry, fd_dict=_open_archives()))
    except Exception as e:  # kaldiio raises many types for a damaged archive
        raise ArchiveError(
            f"{path}: cannot read the matrix at offset {offset} ({type(e).__name__}: {e}): truncated or corrupt",
            Path(path),
        ) from e


def check_archives(entries) -> None:
    """Raise :class:`ArchiveError` for an archive cut short: the last matrix of each archive that ``entries``
    (scp values) point into is read. One read per archive: a truncated archive (a full disk, a copy cut
    short) is found before a long job starts rather than when it reaches the missing matrices."""
    last: dict[str, tuple[int, str]] = {}
    for entry in entries:
        path, _, offset = entry.rpartition(":")
        if offset.isdigit() and int(offset) >= last.get(path, (-1, ""))[0]:
            last[path] = (int(offset), entry)
        elif not offset.isdigit():
            raise ArchiveError(f"'{entry}' is not an archive path and offset (path.ark:offset)", Path(path))
    for _, entry in last.values():
        load_matrix(entry)


def read_matrices(scp: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(key, matrix) of every entry of ``scp``, read sequentially (one open file per archive).

    A damaged archive raises :class:`ArchiveError` naming it (found by reading each entry
    again), or naming ``scp`` when no single entry is to blame.
    """
    import kaldiio

    try:
        yield from kaldiio.load_scp_sequential(str(scp))
    except Exception as e:  # kaldiio raises many types for a damaged archive
        damaged = damaged_archive(scp)
        if damaged is None:
            raise ArchiveError(f"{scp}: cannot be read ({type(e).__name__}: {e})") from e
        raise damaged from e


def damaged_archive(scp: str | Path) -> ArchiveError | None:
    """The error of the first entry of ``scp`` that cannot be read, or None."""
    for entry in read_table(scp).values():
        try:
            load_matrix(entry)
        except ArchiveError as e:
            return e
    return None
