#!/usr/bin/env python3
"""Import existing Kaldi or ESPnet data directories into the recipe.

Usage, from the project root::

    python local/kaldi.py --out-dir data/mycorpus \\
        --set train=/path/to/kaldi/egs/x/s5/data/train dev=/path/to/data/dev \\
        [--set test=/path/to/data/test] [--no-audio-check]

For each ``NAME=PATH``:

1. the source directory is validated (:func:`speechrecipe.datadir.validate`,
   Kaldi's ``validate_data_dir.sh`` checks plus a header read of every audio
   file), so any error names the user's own file and line; all sources are
   checked before anything is written;
2. its tables ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` and, when present,
   ``segments`` and ``utt2dur`` are copied byte for byte into
   ``<out-dir>/<NAME>/`` -- nothing is normalized or re-sorted, and the source
   is never modified (transcripts are used as the user wrote them; other
   files such as ``feats.scp`` or ``cmvn.scp`` are not imported: the recipe
   computes its own features);
3. ``utt2dur`` is computed when the source has none: from ``segments`` (end -
   start) or else from the audio headers (a ``wav.scp`` command ending in
   ``|`` is run to measure it);
4. the copy is validated.

Relative paths in ``wav.scp`` are copied unchanged. Kaldi resolves them
against the directory the tools run in -- the recipe root (``egs/<corpus>/s5``)
where the user ran the data preparation, *not* the data directory or its
parent -- and so does this recipe, which runs from its project root: a
relative path only works when it is relative to the project root as well.
Otherwise validation reports each such file as missing, naming the source
``wav.scp`` line; fix it by making the paths absolute in the source (e.g.
``sed -i "s| data/| /abs/kaldi/s5/data/|" wav.scp``, on a copy if the source
must stay untouched) and importing again.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from speechrecipe.audio import AudioError, duration
from speechrecipe.cli import run_preparation
from speechrecipe.corpus import CorpusError
from speechrecipe.datadir import DataDir, DataDirError, validate
from speechrecipe.fileio import atomic_path, read_table, write_table

log = logging.getLogger("kaldi")

REQUIRED = ("wav.scp", "text", "utt2spk", "spk2utt")
OPTIONAL = ("segments", "utt2dur")
SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class KaldiImportError(CorpusError):
    """A ``--set`` argument is unusable; the message says how to fix it."""


def parse_sets(specs: list[str]) -> dict[str, Path]:
    sets: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise KaldiImportError(f"--set {spec!r}: expected NAME=PATH, e.g. train=/kaldi/egs/x/s5/data/train.")
        if not SET_NAME.match(name):
            raise KaldiImportError(
                f"--set {spec!r}: the name {name!r} must be a plain folder name "
                "(letters, digits, '_', '-', '.'), e.g. train."
            )
        if name in sets:
            raise KaldiImportError(f"--set {name}= is given twice. Fix: one source per set name.")
        sets[name] = Path(path)
    return sets


def copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def compute_utt2dur(source: Path) -> dict[str, str]:
    """utt2dur values (seconds, 3 decimals) from segments, or from the audio of wav.scp."""
    if (source / "segments").is_file():
        durations = {}
        for utt, value in read_table(source / "segments").items():
            _, start, end = value.split()
            durations[utt] = float(end) - float(start)
    else:
        wav_scp = read_table(source / "wav.scp")
        durations = {}
        for utt, entry in tqdm(wav_scp.items(), desc=f"utt2dur {source.name}", unit="file", disable=None, leave=False):
            try:
                durations[utt] = duration(entry)
            except AudioError as e:
                raise AudioError(f"{source / 'wav.scp'}: '{utt}': {e}") from e
    return {utt: f"{d:.3f}" for utt, d in durations.items()}


def import_set(name: str, source: Path, target: Path, check_audio: bool = True) -> DataDir:
    """Copy one (already validated) data directory to ``target``, adding utt2dur; validate the copy."""
    target.mkdir(parents=True, exist_ok=True)
    for table in REQUIRED + OPTIONAL:
        if (source / table).is_file():
            copy_file(source / table, target / table)
        elif (target / table).exists():
            (target / table).unlink()  # from an earlier import of another source
    if not (source / "utt2dur").is_file():
        log.info(
            "%s: no utt2dur in %s, computing it from %s",
            name,
            source,
            "segments" if (source / "segments").is_file() else "the audio",
        )
        write_table(target / "utt2dur", compute_utt2dur(source))
    skipped = sorted(p.name for p in source.iterdir() if p.is_file() and p.name not in REQUIRED + OPTIONAL)
    if skipped:
        log.info("%s: not imported from %s: %s", name, source, " ".join(skipped))
    try:
        return validate(target, check_audio=check_audio)
    except DataDirError as e:
        raise DataDirError(f"the copy of {source} for set '{name}' does not validate:\n{e}") from e


def prepare(
    out_dir: str | os.PathLike, sets: dict[str, str | os.PathLike], check_audio: bool = True
) -> dict[str, DataDir]:
    """Import every ``name -> source`` data directory into ``out_dir/name``; returns the copies by name."""
    out_dir = Path(out_dir)
    sources = {name: Path(path) for name, path in sets.items()}
    for name, source in sources.items():
        if not source.is_dir():
            raise KaldiImportError(
                f"--set {name}={source}: no such directory. Fix: give the path of a Kaldi/ESPnet "
                "data directory (the folder holding wav.scp, text, utt2spk, spk2utt)."
            )
        if (out_dir / name).resolve() == source.resolve():
            raise KaldiImportError(
                f"--set {name}={source}: the source is the destination {out_dir / name}. "
                "Fix: choose another --out-dir; the source is never modified."
            )
    for name, source in sources.items():
        try:
            validate(source, check_audio=check_audio)
        except DataDirError as e:
            raise DataDirError(
                f"source data directory for set '{name}' ({source}) is invalid; "
                f"fix these in the source and import again:\n{e}"
            ) from e
    imported = {}
    for name, source in sources.items():
        d = import_set(name, source, out_dir / name, check_audio)
        log.info("%-10s %s (from %s)", name, d.summary(), source)
        imported[name] = d
    return imported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where the copies go, e.g. data/mycorpus")
    parser.add_argument(
        "--set",
        dest="sets",
        metavar="NAME=PATH",
        nargs="+",
        action="extend",
        required=True,
        help="a data directory to import as <out-dir>/NAME; repeatable",
    )
    parser.add_argument(
        "--audio-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="open every audio file's header while validating; --no-audio-check skips it "
        "(faster; missing audio then fails later) (default: check)",
    )
    args = parser.parse_args(argv)
    return run_preparation(log, lambda: prepare(args.out_dir, parse_sets(args.sets), check_audio=args.audio_check))


if __name__ == "__main__":
    sys.exit(main())
