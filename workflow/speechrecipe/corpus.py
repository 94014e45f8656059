"""What every corpus preparation (``local/<corpus>.py``) shares: its error, and writing its sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .datadir import DataDir, validate


class CorpusError(RuntimeError):
    """The corpus is missing or not laid out as expected; the message says how to fix it."""


def save_sets(out_dir: str | os.PathLike, sets: dict[str, DataDir], log: logging.Logger) -> dict[str, DataDir]:
    """Write each set as ``out_dir/<name>``, validate it like Kaldi's validate_data_dir.sh, log its size."""
    for name, data in sets.items():
        data.save(Path(out_dir) / name)
        validate(Path(out_dir) / name)
        log.info("%-16s %s", name, data.summary())
    return sets
