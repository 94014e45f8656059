#!/usr/bin/env python3
"""LibriSpeech as Kaldi data directories.

Usage, from the project root::

    python local/librispeech.py --out-dir data/librispeech --corpus-dir /corpora \\
        [--train-subsets train-clean-100 [train-clean-360 ...]] \\
        [--dev-subsets dev-clean] [--test-subsets test-clean]

``--corpus-dir`` is the folder that holds ``LibriSpeech/`` or ``LibriSpeech/``
itself, laid out as distributed by openslr.org/12::

    LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac
    LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt   (`<utt-id> TRANSCRIPT` per line)

Sets written under ``--out-dir``: ``train``, ``dev``, ``test``, each the union
of its subsets. Utterance ids are LibriSpeech's own (``<spk>-<chapter>-<nnnn>``);
wav.scp holds the absolute paths of the FLAC files (read directly by
soundfile, no ``flac -d |`` pipe needed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import soundfile
from tqdm import tqdm

from speechrecipe.cli import run_preparation
from speechrecipe.corpus import CorpusError, save_sets
from speechrecipe.datadir import DataDir
from speechrecipe.text import normalize

log = logging.getLogger("librispeech")

HOW_TO_GET = (
    "download and unpack the subsets from https://www.openslr.org/12 (each .tar.gz unpacks into LibriSpeech/<subset>/)"
)


def find_root(corpus_dir: Path) -> Path:
    """The ``LibriSpeech/`` folder: ``corpus_dir/LibriSpeech`` or ``corpus_dir`` itself."""
    if (corpus_dir / "LibriSpeech").is_dir():
        return corpus_dir / "LibriSpeech"
    if corpus_dir.is_dir():
        return corpus_dir
    raise CorpusError(
        f"{corpus_dir}: no such directory. Fix: pass --corpus-dir with the folder that holds "
        f"LibriSpeech/ (or LibriSpeech/ itself); to get the data, {HOW_TO_GET}."
    )


def speaker_of(utt: str) -> str:
    # Speaker id = LibriSpeech's <spk>, and the utterance id <spk>-<chapter>-<nnnn>
    # starts with "<spk>-". That keeps Kaldi's rule "sorting by utterance also sorts
    # by speaker" for any two speakers, 84 and 841 included: in C order '-' (0x2D)
    # sorts before every digit and letter, so "84-..." < "841-..." just as "84" < "841",
    # and validate() checks it. Kaldi's own recipe uses <spk>-<chapter> as the
    # "speaker" (per-chapter CMVN); the true speaker is kept here so that speaker
    # counts, per-speaker statistics and speaker-disjointness refer to people.
    return utt.split("-", 1)[0]


def read_subset(root: Path, subset: str) -> DataDir:
    """One subset's utterances, with durations from the FLAC headers."""
    folder = root / subset
    transcripts = sorted(folder.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise CorpusError(
            f"{folder}: no <spk>/<chapter>/<spk>-<chapter>.trans.txt files. Fix: check the subset "
            f"name and that it is fully unpacked; to get it, {HOW_TO_GET}."
        )
    d = DataDir()
    for trans in tqdm(transcripts, desc=subset, unit="chapter", disable=None, leave=False):
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise CorpusError(
                f"{trans}: not valid UTF-8 (byte {e.start}). Fix: restore the file from the archive."
            ) from e
        chapter = set()  # this chapter's transcribed utterances (comparing with the whole subset was quadratic)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            utt, _, words = line.strip().partition(" ")
            prefix = trans.name[: -len(".trans.txt")] + "-"
            if not utt.startswith(prefix):
                raise CorpusError(
                    f"{trans} line {number}: utterance '{utt}' does not belong to this chapter "
                    f"(expected '{prefix}<nnnn>'). Fix: restore the file from the archive."
                )
            text = normalize(words)
            if not text:
                raise CorpusError(
                    f"{trans} line {number}: utterance '{utt}' has no transcript. "
                    "Fix: restore the file from the archive."
                )
            flac = trans.parent / f"{utt}.flac"
            if not flac.is_file():
                raise CorpusError(
                    f"{trans} line {number}: {flac} does not exist. "
                    "Fix: unpack the subset again (the archive may have been cut short)."
                )
            info = soundfile.info(str(flac))
            d.wav_scp[utt] = os.path.abspath(flac)
            d.text[utt] = text
            d.utt2spk[utt] = speaker_of(utt)
            d.utt2dur[utt] = info.frames / info.samplerate
            chapter.add(utt)
        untranscribed = {p.stem for p in trans.parent.glob("*.flac")} - chapter
        if untranscribed:
            log.warning(
                "%s: %d .flac file(s) without a transcript, skipped (e.g. %s)",
                trans.parent,
                len(untranscribed),
                min(untranscribed),
            )
    return d


def prepare(
    out_dir: str | os.PathLike,
    corpus_dir: str | os.PathLike,
    train_subsets: list[str] = ("train-clean-100",),
    dev_subsets: list[str] = ("dev-clean",),
    test_subsets: list[str] = ("test-clean",),
) -> dict[str, DataDir]:
    """Write ``train``, ``dev`` and ``test`` (see the module docstring), validated; returns them by name."""
    out_dir = Path(out_dir)
    root = find_root(Path(corpus_dir))
    wanted = {"train": list(train_subsets), "dev": list(dev_subsets), "test": list(test_subsets)}
    missing = sorted({s for subsets in wanted.values() for s in subsets if not (root / s).is_dir()})
    if missing:
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise CorpusError(
            f"{root}: missing subset(s) {', '.join(missing)} (present: {', '.join(present) or 'none'}). "
            f"Fix: {HOW_TO_GET}, or choose other subsets with --train-subsets/--dev-subsets/--test-subsets."
        )
    used: dict[str, str] = {}
    for name, subsets in wanted.items():
        for subset in subsets:
            if subset in used:
                raise CorpusError(
                    f"subset {subset} is given for both {used[subset]} and {name}. "
                    "Fix: give each subset to one set only."
                )
            used[subset] = name

    sets = {}
    for name, subsets in wanted.items():
        if not subsets:
            log.info("%-6s no subsets, not written", name)
            continue
        d = DataDir()
        for subset in subsets:
            part = read_subset(root, subset)
            again = sorted(set(part.text) & set(d.text))
            if again:
                raise CorpusError(
                    f"{root / subset}: utterance {again[0]} is also in another subset of {name}. "
                    "Fix: give each subset once."
                )
            for table in ("wav_scp", "text", "utt2spk", "utt2dur"):
                getattr(d, table).update(getattr(part, table))
        log.info("%-6s from %s", name, " ".join(subsets))
        sets[name] = d
    return save_sets(out_dir, sets, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where the data directories go, e.g. data/librispeech")
    parser.add_argument("--corpus-dir", required=True, help="folder holding LibriSpeech/, or LibriSpeech/ itself")
    parser.add_argument("--train-subsets", nargs="+", default=["train-clean-100"], help="default: %(default)s")
    parser.add_argument("--dev-subsets", nargs="+", default=["dev-clean"], help="default: %(default)s")
    parser.add_argument("--test-subsets", nargs="+", default=["test-clean"], help="default: %(default)s")
    args = parser.parse_args(argv)
    return run_preparation(
        log, lambda: prepare(args.out_dir, args.corpus_dir, args.train_subsets, args.dev_subsets, args.test_subsets)
    )


if __name__ == "__main__":
    sys.exit(main())
