#!/usr/bin/env python3
"""Import existing Kaldi or ESPnet data directories into the recipe.

Usage, from the project root::

    python local/kaldi.py --out-dir data/mycorpus \\
        --set train=/path/to/kaldi/egs/x/s5/data/train dev=/path/to/data/dev \\
        [--set test=/path/to/data/test] [--no-audio-check]

For each ``NAME=PATH``:

1. the source directory is validated (:func:`speechrecipe.datadir.validate`,
   Kaldi's ``validate_data_dir.sh`` checks plus a header read of every audio
   file; what step 2 normalizes is let through), so any error names the
   user's own file and line; all sources are checked before anything is
   written;
2. its tables ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` and, when present,
   ``segments`` and ``utt2dur`` are copied into ``<out-dir>/<NAME>/`` as they
   are, except for what Kaldi tolerates or what is plainly an encoding accident
   (:func:`speechrecipe.datadir.normalize_table`: CRLF line ends, a UTF-8
   byte-order mark, a missing last newline, a tab or several spaces after the
   id), made canonical with one log line per kind of change naming the files
   and how many lines it touched. Ids are not re-sorted, transcripts are used
   as the user wrote them, and the source is never modified (other files such
   as ``feats.scp`` or ``cmvn.scp`` are not imported: the recipe computes its
   own features);
3. ``utt2dur`` is computed when the source has none: from ``segments`` (end -
   start) or else from the audio headers (a ``wav.scp`` command ending in
   ``|`` is run to measure it; every command that fails is reported with its
   line), for every set before anything is written;
4. a ``wav.scp`` file that is not WAV whatever its name (an MP3 called
   ``.wav``) is named in a warning: the recipe decodes it, Kaldi's tools cannot;
5. the copy is validated.

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
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from speechrecipe.audio import KALDI_READABLE_FORMATS, AudioError, duration, file_format
from speechrecipe.cli import run_preparation
from speechrecipe.corpus import CorpusError
from speechrecipe.datadir import TABLE_FIXES, DataDir, DataDirError, listing, normalize_table, validate
from speechrecipe.fileio import atomic_path, split_key, write_table

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


@dataclass
class Source:
    """One ``--set NAME=PATH``: its tables as they will be imported, and what normalizing them changed."""

    name: str
    path: Path
    tables: dict[str, bytes]  # file name -> normalized content
    fixes: dict[str, dict[str, int]]  # kind of change (TABLE_FIXES) -> {file name: lines changed}

    @classmethod
    def read(cls, name: str, path: Path) -> Source:
        tables, fixes = {}, {}
        for table in REQUIRED + OPTIONAL:
            if (path / table).is_file():
                tables[table], changed = normalize_table((path / table).read_bytes())
                for kind, lines in changed.items():
                    fixes.setdefault(kind, {})[table] = lines
        return cls(name, path, tables, fixes)

    def rows(self, table: str) -> list[tuple[int, str, str]]:
        """(line number, key, value) of each line of a (validated, normalized) table."""
        lines = self.tables[table].decode("utf-8").split("\n")[:-1]  # every line ends in a newline
        return [(number, *split_key(line)) for number, line in enumerate(lines, start=1)]


def compute_utt2dur(source: Source) -> dict[str, str]:
    """utt2dur values (seconds, 3 decimals) from segments, or from the audio of wav.scp.

    Every wav.scp entry that cannot be measured (a failing command, most often) is reported at
    once, with its line, as validation reports unreadable audio files.
    """
    if "segments" in source.tables:
        durations = {}
        for _, utt, value in source.rows("segments"):
            _, start, end = value.split()
            durations[utt] = float(end) - float(start)
        return {utt: f"{d:.3f}" for utt, d in durations.items()}
    durations, failures = {}, []
    wav_scp = source.rows("wav.scp")
    for number, utt, entry in tqdm(wav_scp, desc=f"utt2dur {source.name}", unit="file", disable=None, leave=False):
        try:
            durations[utt] = duration(entry)
        except AudioError as e:
            failures.append(f"{source.path / 'wav.scp'} line {number}: '{utt}': {e}")
    if failures:
        raise AudioError(
            f"set '{source.name}': {len(failures)} of {len(wav_scp)} wav.scp entries cannot be read to measure "
            "utt2dur. Fix: correct these commands or the files they read (run one by hand to see the whole "
            "error), then import again:\n" + listing(failures, "entries")
        )
    return {utt: f"{d:.3f}" for utt, d in durations.items()}


def warn_not_wav(source: Source, shown: int = 5) -> None:
    """Warn about wav.scp files that hold another format than WAV: Kaldi's tools cannot read them."""
    others = []
    for number, _, entry in source.rows("wav.scp"):
        found = file_format(entry, base=Path.cwd())
        if found is not None and found not in KALDI_READABLE_FORMATS:
            others.append(f"line {number} '{entry}' is {found}")
    if others:
        more = f" and {len(others) - shown} more" if len(others) > shown else ""
        log.warning(
            "%s: %d file(s) in %s are not WAV files, whatever their names say (%s%s). This recipe decodes them, "
            "but Kaldi's tools read every wav.scp file as WAV and cannot. Fix, to use the data with Kaldi too: "
            "convert them to PCM WAV, e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav` or "
            "`sox -t mp3 in.wav out.wav` (sox goes by the name unless -t says the type), and point wav.scp at the "
            "converted files.",
            source.name,
            len(others),
            source.path / "wav.scp",
            "; ".join(others[:shown]),
            more,
        )


def import_set(source: Source, target: Path, utt2dur: dict[str, str] | None, check_audio: bool = True) -> DataDir:
    """Write one (already validated) source's tables to ``target``, with utt2dur when given; validate the copy."""
    target.mkdir(parents=True, exist_ok=True)
    for table in REQUIRED + OPTIONAL:
        if table in source.tables:
            with atomic_path(target / table) as tmp:
                tmp.write_bytes(source.tables[table])
        elif (target / table).exists():
            (target / table).unlink()  # from an earlier import of another source
    if utt2dur is not None:
        write_table(target / "utt2dur", utt2dur)
    for kind, tables in source.fixes.items():
        touched = ", ".join(f"{table} ({lines} line{'s' if lines > 1 else ''})" for table, lines in tables.items())
        log.info("%s: %s in the copy of %s: %s", source.name, TABLE_FIXES[kind], source.path, touched)
    skipped = sorted(p.name for p in source.path.iterdir() if p.is_file() and p.name not in REQUIRED + OPTIONAL)
    if skipped:
        log.info("%s: not imported from %s: %s", source.name, source.path, " ".join(skipped))
    try:
        return validate(target, check_audio=check_audio)
    except DataDirError as e:
        raise DataDirError(f"the copy of {source.path} for set '{source.name}' does not validate:\n{e}") from e


def prepare(
    out_dir: str | os.PathLike, sets: dict[str, str | os.PathLike], check_audio: bool = True
) -> dict[str, DataDir]:
    """Import every ``name -> source`` data directory into ``out_dir/name``; returns the copies by name."""
    out_dir = Path(out_dir)
    paths = {name: Path(path) for name, path in sets.items()}
    for name, path in paths.items():
        if not path.is_dir():
            raise KaldiImportError(
                f"--set {name}={path}: no such directory. Fix: give the path of a Kaldi/ESPnet "
                "data directory (the folder holding wav.scp, text, utt2spk, spk2utt)."
            )
        if (out_dir / name).resolve() == path.resolve():
            raise KaldiImportError(
                f"--set {name}={path}: the source is the destination {out_dir / name}. "
                "Fix: choose another --out-dir; the source is never modified."
            )
    for name, path in paths.items():
        try:
            # What normalize_table fixes is let through here: the copy is made without it and validated strictly.
            validate(path, check_audio=check_audio, tolerate_normalizable=True)
        except DataDirError as e:
            raise DataDirError(
                f"source data directory for set '{name}' ({path}) is invalid; "
                f"fix these in the source and import again:\n{e}"
            ) from e
    sources = [Source.read(name, path) for name, path in paths.items()]
    durations = {}
    for source in sources:
        if check_audio:
            warn_not_wav(source)
        if "utt2dur" not in source.tables:
            how = "segments" if "segments" in source.tables else "the audio"
            log.info("%s: no utt2dur in %s, computing it from %s", source.name, source.path, how)
            durations[source.name] = compute_utt2dur(source)
    imported = {}
    for source in sources:
        d = import_set(source, out_dir / source.name, durations.get(source.name), check_audio)
        log.info("%-10s %s (from %s)", source.name, d.summary(), source.path)
        imported[source.name] = d
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
