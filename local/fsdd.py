#!/usr/bin/env python3
"""Free Spoken Digit Dataset (FSDD) as Kaldi data directories.

Usage, from the project root::

    python local/fsdd.py --out-dir data/fsdd [--corpus-dir ../shared/data/fsdd] \\
        [--dev-speakers nicolas] [--test-speakers yweweler] [--train-speakers george] \\
        [--connected-per-speaker 100] [--seed 0] [--no-download]

FSDD (github.com/Jakobovski/free-spoken-digit-dataset) holds isolated English
digits as ``recordings/{digit}_{speaker}_{take}.wav`` (8 kHz mono). It has no
speaker split of its own, so whole speakers are held out: ``--dev-speakers``
and ``--test-speakers``; every other speaker is training data, unless
``--train-speakers`` names which (e.g. one speaker, for adaptation from
another corpus); the rest are then left out.

Sets written under ``--out-dir``:

``train``, ``dev``, ``test``
    isolated digits, one recording per utterance; utterance id
    ``<speaker>-<file stem>`` (``george-0_george_12``), transcript the digit
    word (``ZERO`` .. ``NINE``); wav.scp points at the corpus files.
``train_connected``, ``dev_connected``, ``test_connected``
    connected digits: each utterance is 2 to 6 recordings of one speaker of
    the set joined with 0.05-0.25 s of near-silence between them and a little
    at the edges, ``--connected-per-speaker`` utterances per speaker
    (``george-conn0007``). The audio is generated (deterministically, from
    ``--seed``) as 8 kHz WAV under ``<out-dir>/wav/<set>/``.
``train_all``, ``dev_all``
    ``train`` + ``train_connected`` (the recipe's training set) and
    ``dev`` + ``dev_connected``.

``--corpus-dir`` may be the folder that holds ``recordings/`` or
``recordings/`` itself. When neither exists, the GitHub archive is downloaded
into ``--corpus-dir`` (unless ``--no-download``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from speechrecipe.audio import read_audio, write_wav
from speechrecipe.cli import run_preparation
from speechrecipe.corpus import CorpusError, save_sets
from speechrecipe.datadir import DataDir
from speechrecipe.text import DIGIT_WORDS, normalize

log = logging.getLogger("fsdd")

URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
RATE = 8000
FILE_NAME = re.compile(r"^([0-9])_([A-Za-z0-9]+)_([0-9]+)\.wav$")

GAP_SECONDS = (0.05, 0.25)  # silence between two digits of a connected utterance
EDGE_SECONDS = (0.02, 0.10)  # silence before the first and after the last digit
WORDS_PER_UTTERANCE = (2, 6)  # inclusive
# The "silence" is noise at about -80 dBFS (a few 16-bit steps), not digital zero,
# so that log filterbank features of the gaps stay finite and unremarkable.
SILENCE_STD = 1e-4


@dataclass(frozen=True)
class Recording:
    utt: str  # <speaker>-<file stem>
    speaker: str
    digit: int
    path: str  # absolute


def find_recordings(corpus_dir: Path, download: bool = True) -> Path:
    """The ``recordings/`` folder of ``corpus_dir`` (or ``corpus_dir`` itself), downloading FSDD if absent."""
    for candidate in (corpus_dir / "recordings", corpus_dir):
        if candidate.is_dir() and any(FILE_NAME.match(p.name) for p in candidate.iterdir()):
            return candidate
    if corpus_dir.exists() and any(corpus_dir.iterdir()):
        raise CorpusError(
            f"{corpus_dir}: no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav) in it or in "
            f"{corpus_dir / 'recordings'}. Fix: pass --corpus-dir with the folder that holds recordings/ "
            f"(a clone of https://github.com/Jakobovski/free-spoken-digit-dataset)."
        )
    how = (
        f"Fix: get the data by hand, e.g. `git clone https://github.com/Jakobovski/free-spoken-digit-dataset "
        f"{corpus_dir}` (or unzip {URL} there), or pass --corpus-dir with the folder that holds recordings/."
    )
    if not download:
        raise CorpusError(f"{corpus_dir}: no such FSDD corpus directory (download disabled). {how}")
    try:
        download_fsdd(corpus_dir)
    except (OSError, urllib.error.URLError, zipfile.BadZipFile, CorpusError) as e:
        raise CorpusError(f"{corpus_dir}: no FSDD corpus there, and downloading {URL} failed ({e}). {how}") from e
    return corpus_dir / "recordings"


def download_fsdd(corpus_dir: Path) -> None:
    """Fetch the GitHub archive and unpack its ``recordings/`` into ``corpus_dir/recordings``."""
    created = not corpus_dir.exists()
    corpus_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", URL, corpus_dir)
    try:
        with tempfile.TemporaryDirectory(dir=corpus_dir, prefix=".download.") as tmp:
            archive = Path(tmp) / "fsdd.zip"
            with urllib.request.urlopen(URL, timeout=60) as response, open(archive, "wb") as f:
                shutil.copyfileobj(response, f)
            with zipfile.ZipFile(archive) as z:
                members = [m for m in z.namelist() if "/recordings/" in m and m.endswith(".wav")]
                if not members:
                    raise CorpusError(f"the archive from {URL} holds no recordings/*.wav")
                z.extractall(Path(tmp) / "unpacked", members)
            unpacked = next((Path(tmp) / "unpacked").glob("*/recordings"))
            os.replace(unpacked, corpus_dir / "recordings")  # whole folder or nothing
    except BaseException:
        if created and not any(corpus_dir.iterdir()):
            corpus_dir.rmdir()
        raise


def scan(recordings: Path) -> dict[str, list[Recording]]:
    """Recordings by speaker, each list sorted by utterance id."""
    by_speaker: dict[str, list[Recording]] = {}
    ignored = []
    for path in sorted(recordings.iterdir()):
        match = FILE_NAME.match(path.name)
        if not match:
            if path.suffix == ".wav":
                ignored.append(path.name)
            continue
        digit, speaker, _ = match.groups()
        by_speaker.setdefault(speaker, []).append(
            Recording(f"{speaker}-{path.stem}", speaker, int(digit), os.path.abspath(path))
        )
    if ignored:
        log.warning(
            "%s: ignored %d .wav file(s) not named {digit}_{speaker}_{take}.wav, e.g. %s",
            recordings,
            len(ignored),
            ignored[0],
        )
    for records in by_speaker.values():
        records.sort(key=lambda r: r.utt.encode("utf-8"))
    return by_speaker


def split_speakers(
    speakers: list[str], dev: list[str], test: list[str], train: list[str] | None = None
) -> dict[str, list[str]]:
    """Speakers of train, dev and test: ``train`` None means every speaker not in dev or test."""
    known = set(speakers)
    for option, chosen in (("--dev-speakers", dev), ("--test-speakers", test), ("--train-speakers", train or [])):
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise CorpusError(
                f"{option}: no recordings of speaker(s) {', '.join(unknown)} in the corpus. "
                f"Fix: choose among {', '.join(sorted(known))}."
            )
    both = sorted(set(dev) & set(test))
    if both:
        raise CorpusError(
            f"speaker(s) {', '.join(both)} are in both --dev-speakers and --test-speakers. "
            "Fix: hold each speaker out once, so that dev and test are speaker-disjoint."
        )
    if train is not None:
        if not train:
            raise CorpusError(
                "--train-speakers names no speaker. Fix: name at least one, or leave it out "
                "to train on every speaker not in dev or test."
            )
        held_out = sorted(set(train) & (set(dev) | set(test)))
        if held_out:
            raise CorpusError(
                f"speaker(s) {', '.join(held_out)} are in --train-speakers and held out in "
                "--dev-speakers or --test-speakers. Fix: train on other speakers, so that "
                "training stays speaker-disjoint from dev and test."
            )
        train = sorted(set(train))
    else:
        train = sorted(known - set(dev) - set(test))
    if not train:
        raise CorpusError(
            "--dev-speakers and --test-speakers leave no speaker for training. "
            f"Fix: hold out fewer of {', '.join(sorted(known))}."
        )
    return {"train": train, "dev": sorted(set(dev)), "test": sorted(set(test))}


def isolated_set(by_speaker: dict[str, list[Recording]], speakers: list[str]) -> DataDir:
    d = DataDir()
    records = [r for s in speakers for r in by_speaker[s]]
    for r in tqdm(records, desc="isolated digits", unit="file", disable=None, leave=False):
        info = soundfile.info(r.path)
        if info.frames == 0:
            log.warning("%s: empty recording, skipped", r.path)
            continue
        d.wav_scp[r.utt] = r.path
        d.text[r.utt] = normalize(DIGIT_WORDS[r.digit])
        d.utt2spk[r.utt] = r.speaker
        d.utt2dur[r.utt] = info.frames / info.samplerate
    return d


def silence(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    n = round(rng.uniform(low, high) * RATE)
    return (rng.standard_normal(n) * SILENCE_STD).astype(np.float32)


def connected_set(
    name: str, by_speaker: dict[str, list[Recording]], speakers: list[str], per_speaker: int, seed: int, out_dir: Path
) -> DataDir:
    """Generate ``per_speaker`` connected-digit utterances per speaker under ``<out_dir>/wav/<name>/``."""
    wav_dir = out_dir / "wav" / name
    wav_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(per_speaker - 1)))
    d = DataDir()
    cache: dict[str, np.ndarray] = {}

    def audio(r: Recording) -> np.ndarray:
        if r.path not in cache:
            cache[r.path] = read_audio(r.path, rate=RATE)[0]
        return cache[r.path]

    progress = tqdm(total=per_speaker * len(speakers), desc=name, unit="utt", disable=None, leave=False)
    for speaker in speakers:
        pool = by_speaker[speaker]
        # One generator per (seed, set, speaker): a speaker's utterances do not change
        # when other speakers are added, removed or moved between sets.
        rng = np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(speaker.encode())])
        for i in range(per_speaker):
            count = int(rng.integers(WORDS_PER_UTTERANCE[0], WORDS_PER_UTTERANCE[1] + 1))
            picks = [pool[j] for j in rng.choice(len(pool), size=min(count, len(pool)), replace=False)]
            pieces = [silence(rng, *EDGE_SECONDS)]
            for k, r in enumerate(picks):
                if k:
                    pieces.append(silence(rng, *GAP_SECONDS))
                pieces.append(audio(r))
            pieces.append(silence(rng, *EDGE_SECONDS))
            samples = np.clip(np.concatenate(pieces), -1.0, 1.0)

            utt = f"{speaker}-conn{i:0{width}d}"
            path = wav_dir / f"{utt}.wav"
            write_wav(path, samples, RATE)
            d.wav_scp[utt] = str(path)
            d.text[utt] = normalize(" ".join(DIGIT_WORDS[r.digit] for r in picks))
            d.utt2spk[utt] = speaker
            d.utt2dur[utt] = len(samples) / RATE
            progress.update()
    progress.close()
    # Audio of an earlier run with more utterances or other speakers would linger.
    for stale in wav_dir.glob("*.wav"):
        if stale.stem not in d.wav_scp:
            stale.unlink()
    return d


def merge(*dirs: DataDir) -> DataDir:
    out = DataDir()
    for d in dirs:
        for table in ("wav_scp", "text", "utt2spk", "utt2dur"):
            getattr(out, table).update(getattr(d, table))
    return out


def prepare(
    out_dir: str | os.PathLike,
    corpus_dir: str | os.PathLike = "../shared/data/fsdd",
    dev_speakers: list[str] = ("nicolas",),
    test_speakers: list[str] = ("yweweler",),
    connected_per_speaker: int = 100,
    seed: int = 0,
    download: bool = True,
    train_speakers: list[str] | None = None,
) -> dict[str, DataDir]:
    """Write every set (see the module docstring) and validate it; returns them by name.

    ``train_speakers`` None trains on every speaker not held out for dev or test."""
    out_dir = Path(out_dir)
    recordings = find_recordings(Path(corpus_dir), download=download)
    by_speaker = scan(recordings)
    if not by_speaker:
        raise CorpusError(f"{recordings}: no {{digit}}_{{speaker}}_{{take}}.wav files. Fix: check --corpus-dir.")
    splits = split_speakers(
        sorted(by_speaker),
        list(dev_speakers),
        list(test_speakers),
        None if train_speakers is None else list(train_speakers),
    )
    log.info("speakers: %s", "; ".join(f"{s}: {' '.join(v)}" for s, v in splits.items()))

    sets: dict[str, DataDir] = {}
    for split, speakers in splits.items():
        sets[split] = isolated_set(by_speaker, speakers)
    if connected_per_speaker > 0:
        for split, speakers in splits.items():
            sets[f"{split}_connected"] = connected_set(
                f"{split}_connected", by_speaker, speakers, connected_per_speaker, seed, out_dir
            )
        sets["train_all"] = merge(sets["train"], sets["train_connected"])
        sets["dev_all"] = merge(sets["dev"], sets["dev_connected"])
    else:
        sets["train_all"], sets["dev_all"] = sets["train"], sets["dev"]

    return save_sets(out_dir, sets, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where the data directories go, e.g. data/fsdd")
    parser.add_argument(
        "--corpus-dir",
        default="../shared/data/fsdd",
        help="FSDD folder (holding recordings/) or recordings/ itself (default: %(default)s)",
    )
    parser.add_argument("--dev-speakers", nargs="+", default=["nicolas"], help="default: %(default)s")
    parser.add_argument("--test-speakers", nargs="+", default=["yweweler"], help="default: %(default)s")
    parser.add_argument(
        "--train-speakers",
        nargs="+",
        default=None,
        help="speakers of train and train_connected (default: every speaker not in dev or test)",
    )
    parser.add_argument(
        "--connected-per-speaker",
        type=int,
        default=100,
        help="connected-digit utterances per speaker and set; 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the connected-digit generator (default: %(default)s)"
    )
    parser.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download a missing corpus from GitHub; --no-download fails instead (default: download)",
    )
    args = parser.parse_args(argv)
    if args.connected_per_speaker < 0:
        parser.error("--connected-per-speaker must be 0 or more")
    if args.seed < 0:
        parser.error("--seed must be 0 or more")
    return run_preparation(
        log,
        lambda: prepare(
            args.out_dir,
            args.corpus_dir,
            args.dev_speakers,
            args.test_speakers,
            args.connected_per_speaker,
            args.seed,
            download=args.download,
            train_speakers=args.train_speakers,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
