#!/usr/bin/env python3
"""LJ Speech as Kaldi data directories.

Usage, from the project root::

    python local/ljspeech.py --out-dir data/ljspeech [--corpus-dir ../shared/data/ljspeech] \\
        [--num-dev 25] [--num-test 25]

The corpus folder holds ``metadata.csv`` (``ID|raw text|normalized text``,
UTF-8) and ``wavs/<ID>.wav`` (22.05 kHz mono). The normalized column (numbers
and abbreviations spelled out) is used, passed through
:func:`speechrecipe.text.normalize`. There is one speaker, ``LJ``; clip ids
(``LJ001-0001``) already start with it.

Sets written under ``--out-dir``: ``train``, ``dev``, ``test``. The clips are
sorted by id; the last ``--num-test`` are ``test``, the ``--num-dev`` before
them ``dev``, the rest ``train`` (a held-out tail, so adding clips to the
corpus grows ``train`` only when the tail sizes grow with it). A set of size 0
is not written.
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

log = logging.getLogger("ljspeech")

SPEAKER = "LJ"


def read_metadata(corpus_dir: Path) -> list[tuple[str, str, Path]]:
    """(clip id, normalized transcript, wav path) for every line of metadata.csv, in file order."""
    metadata = corpus_dir / "metadata.csv"
    if not metadata.is_file():
        raise CorpusError(
            f"{metadata}: missing. Fix: pass --corpus-dir with the LJSpeech-1.1 folder that holds metadata.csv "
            "and wavs/ (https://keithito.com/LJ-Speech-Dataset/)."
        )
    raw = metadata.read_bytes()
    clips = []
    seen: dict[str, int] = {}
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CorpusError(
                f"{metadata} line {number}: not valid UTF-8 (byte {e.start}). Fix: re-encode the file as UTF-8."
            ) from e
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 3:
            raise CorpusError(
                f"{metadata} line {number}: {len(fields)} field(s), expected 3 (`ID|raw text|normalized text`). "
                "Fix: one clip per line, fields separated by '|', no '|' inside a transcript."
            )
        clip, _, normalized = (f.strip() for f in fields)
        if not clip or any(c.isspace() for c in clip):
            raise CorpusError(
                f"{metadata} line {number}: bad clip id {clip!r}. Fix: the first field is the wav "
                "file's name without .wav, without spaces."
            )
        if clip in seen:
            raise CorpusError(
                f"{metadata} line {number}: clip {clip} again (first on line {seen[clip]}). "
                "Fix: keep one line per clip."
            )
        seen[clip] = number
        text = normalize(normalized)
        if not text:
            raise CorpusError(
                f"{metadata} line {number}: clip {clip} has an empty normalized transcript. "
                "Fix: fill the third field or delete the line."
            )
        wav = corpus_dir / "wavs" / f"{clip}.wav"
        if not wav.is_file():
            raise CorpusError(
                f"{metadata} line {number}: clip {clip} has no audio: {wav} does not exist. "
                "Fix: restore the file or delete the line."
            )
        clips.append((clip, text, wav))
    if not clips:
        raise CorpusError(f"{metadata}: no clips. Fix: check --corpus-dir.")
    return clips


def utterance_id(clip: str) -> str:
    # LJ Speech ids already start with the speaker; keep any other id speaker-prefixed too.
    return clip if clip.startswith(SPEAKER) else f"{SPEAKER}-{clip}"


def prepare(
    out_dir: str | os.PathLike,
    corpus_dir: str | os.PathLike = "../shared/data/ljspeech",
    num_dev: int = 25,
    num_test: int = 25,
) -> dict[str, DataDir]:
    """Write ``train``, ``dev`` and ``test`` (see the module docstring), validated; returns them by name."""
    out_dir, corpus_dir = Path(out_dir), Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"{corpus_dir}: no such directory. Fix: pass --corpus-dir with the LJSpeech-1.1 folder "
            "(metadata.csv and wavs/), https://keithito.com/LJ-Speech-Dataset/."
        )
    clips = read_metadata(corpus_dir)
    clips.sort(key=lambda c: utterance_id(c[0]).encode("utf-8"))
    n = len(clips)
    if num_dev < 0 or num_test < 0 or num_dev + num_test >= n:
        raise CorpusError(
            f"--num-dev {num_dev} and --num-test {num_test}: the corpus has {n} clips, "
            "so they must be 0 or more and leave at least one clip for train."
        )
    bounds = {
        "train": (0, n - num_dev - num_test),
        "dev": (n - num_dev - num_test, n - num_test),
        "test": (n - num_test, n),
    }

    full = DataDir()
    for clip, text, wav in tqdm(clips, desc="ljspeech", unit="clip", disable=None, leave=False):
        utt = utterance_id(clip)
        info = soundfile.info(str(wav))
        full.wav_scp[utt] = os.path.abspath(wav)
        full.text[utt] = text
        full.utt2spk[utt] = SPEAKER
        full.utt2dur[utt] = info.frames / info.samplerate

    sets = {}
    for name, (first, last) in bounds.items():
        if first == last:
            log.info("%-6s empty, not written", name)
            continue
        sets[name] = full.subset(utterance_id(c[0]) for c in clips[first:last])
    return save_sets(out_dir, sets, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where the data directories go, e.g. data/ljspeech")
    parser.add_argument(
        "--corpus-dir",
        default="../shared/data/ljspeech",
        help="folder holding metadata.csv and wavs/ (default: %(default)s)",
    )
    parser.add_argument("--num-dev", type=int, default=25, help="clips held out for dev (default: %(default)s)")
    parser.add_argument(
        "--num-test", type=int, default=25, help="clips held out for test, the very last (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    return run_preparation(log, lambda: prepare(args.out_dir, args.corpus_dir, args.num_dev, args.num_test))


if __name__ == "__main__":
    sys.exit(main())
