"""The command-line layer: what the stage scripts (``workflow/scripts/``), the corpus scripts
(``local/``) and the installed commands (``asr-transcribe``, ``asr-export``) share.

Nothing in the library imports this package: it is the top of the import graph, where a
problem becomes a message for a person and an exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError

log = logging.getLogger("speechrecipe.cli")


def setup_logging(rank: int = 0) -> None:
    """Log to stderr (a rule redirects it to its log file); beyond rank 0 of a data-parallel run, errors only."""
    if rank != 0:
        logging.basicConfig(
            level=logging.ERROR,
            stream=sys.stderr,
            format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s",
        )
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("command: %s", " ".join(sys.argv))


def json_or_file(value: str) -> dict:
    """A config section given as a JSON string or as the path of a JSON/YAML file (handy by hand)."""
    if value.lstrip().startswith("{"):
        return json.loads(value)
    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text()) or {}
    return json.loads(path.read_text())


def section(cls, path: str = "") -> Callable[[str], object]:
    """An argparse ``type``: a JSON string or file read into the config dataclass ``cls``, strictly
    (an unknown key is an error naming it, never a silent default)."""

    def parse(value: str):
        try:
            return cls.from_dict(json_or_file(value), path)
        except (ConfigError, ValueError, OSError) as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    parse.__name__ = cls.__name__  # what argparse names in its error message
    return parse


def add_section(parser: argparse.ArgumentParser, flag: str, cls, path: str, default, what: str) -> None:
    """An option that takes config section ``path`` (JSON or a file) as a ``cls``; unknown keys are errors."""
    parser.add_argument(flag, type=section(cls, path), default=default, help=f"{what} (section {path}: JSON or file)")


def fail(message: str, code: int = 1) -> None:
    """Stop with a message meant for a person (no traceback for expected errors)."""
    log.error(message)
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(code)


def fail_on_damaged_features(error) -> None:
    """Stop on a damaged feature archive (:class:`speechrecipe.archive.ArchiveError`) so that re-running
    rebuilds it: the archive (``<feature dir>/data/feats.N.ark``), its job's index and the set's
    ``feats.scp`` are removed, never used.

    A damaged archive comes from a full disk or a copy cut short, never from a killed job (whose
    outputs appear only when complete)."""
    if error.archive is None:
        fail(str(error))
    feat_dir = error.archive.parent.parent
    candidates = (feat_dir / "feats.scp", error.archive.with_suffix(".scp"), error.archive)
    removed = [p for p in candidates if p.exists()]
    for path in removed:
        path.unlink()
    fail(
        f"{error}. Not used: removed {', '.join(map(str, removed)) or 'nothing'}. Fix: run the same snakemake "
        "command again; it extracts these features again (by hand: make_features.py for that job, then "
        "gather_features.py)."
    )


def run_preparation(log: logging.Logger, prepare: Callable[[], object], errors: tuple = ()) -> int:
    """The body of a ``local/<corpus>.py`` main: log to stderr, prepare, and turn an expected error
    (a corpus problem, a malformed data directory, unreadable audio) into one line and exit status 1."""
    from ..audio import AudioError
    from ..corpus import CorpusError
    from ..datadir import DataDirError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare()
    except (CorpusError, DataDirError, AudioError, *errors) as e:
        log.error("%s", e)
        return 1
    return 0
