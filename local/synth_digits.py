#!/usr/bin/env python3
"""Synthetic connected digits spoken by eSpeak NG: the recipe's built-in corpus.

Usage, from the project root::

    python local/synth_digits.py --out-dir data/synth_digits [--seed 1] \\
        [--utts-per-speaker 60] [--min-digits 1] [--max-digits 5] \\
        [--num-train-speakers 8] [--num-dev-speakers 2] [--num-test-speakers 2] \\
        [--words yes,no]

Needs no download and no corpus: the speech is synthesised by eSpeak NG (the
``espeakng-loader`` package, see ``speechrecipe.synth``). Writes the Kaldi
data directories ``<out-dir>/{train,dev,test}/`` (wav.scp, text, utt2spk,
spk2utt, utt2dur) and the audio as 16-bit WAV at eSpeak's native rate
(22050 Hz) under ``<out-dir>/wav/<speaker>/<utt>.wav``.

A "speaker" is an English eSpeak voice with a variant (accent x variant,
e.g. ``en-gb-scotland+f3``) speaking at its own rate (130-200 words per
minute) and pitch (30-70). Every speaker has a different voice, so dev and
test speakers are unseen in training, while their accents, variants, rates
and pitches all occur there too. Speaker ids are ``synth01`` ... (training
first, then dev, then test); utterance ids ``<speaker>-<index:04d>``.

Each utterance is a random string of ``--min-digits`` to ``--max-digits``
digits (transcript ``THREE ONE FOUR``), or of words of ``--words`` (any
vocabulary eSpeak can say, e.g. ``--words yes,no`` or a spelling alphabet), with 0.05-0.3 s of near-silence before
and after it and a random gain of 0 to -6 dB. Everything is drawn from
``--seed``, and each utterance from its own generator seeded by the seed and
its id, so a run with the same arguments reproduces every file bit for bit.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechrecipe import synth
from speechrecipe.audio import write_wav
from speechrecipe.cli import run_preparation
from speechrecipe.corpus import CorpusError
from speechrecipe.datadir import DataDir, validate
from speechrecipe.text import DIGIT_WORDS

log = logging.getLogger("synth_digits")

# English voices of the shipped eSpeak data (synth.list_voices("en"), less en-Shaw,
# which is the Shavian alphabet). "en" is British English.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# eSpeak's plain female and male variants (voices/!v/f1 ...); the named ones are
# mostly novelty or robotic voices.
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
RATE_WPM = (130, 200)  # inclusive
PITCH = (30, 70)  # inclusive; eSpeak's scale is 0-100 around the variant's own pitch
EDGE_SECONDS = (0.05, 0.30)  # near-silence before and after the digits
GAIN_DB = (-6.0, 0.0)  # eSpeak peaks near full scale, so the gain only attenuates
# The "silence" is noise at about -80 dBFS (a few 16-bit steps), not digital zero,
# so that log filterbank features of it stay finite (as in local/fsdd.py).
SILENCE_STD = 1e-4
SETS = ("train", "dev", "test")


class SynthError(CorpusError):
    """The arguments cannot be satisfied; the message says how to fix it."""


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str  # eSpeak voice name with variant, e.g. "en-us+f2"
    rate: int  # words per minute
    pitch: int  # 0-100


def choose_speakers(seed: int, counts: dict[str, int]) -> dict[str, list[Speaker]]:
    """Speakers per set (``counts``: set name -> how many, training first), drawn from ``seed``.

    Every speaker has a voice (accent + variant) of its own; female and male
    variants alternate. Training voices spread over as many accents and
    variants as possible. Each later set takes voices that are new
    combinations of accents and variants heard in training, so that its
    speakers are unseen but not out of reach.
    """
    rng = np.random.default_rng([seed, zlib.crc32(b"speakers")])
    voices = [(a, v) for a in ACCENTS for v in FEMALE_VARIANTS + MALE_VARIANTS]
    voices = [voices[i] for i in rng.permutation(len(voices))]  # the order that breaks ties
    total = sum(counts.values())
    if total > len(voices):
        raise SynthError(
            f"{total} speakers asked for, but there are only {len(voices)} distinct voices. "
            "Fix: ask for fewer speakers, or more utterances per speaker."
        )
    width = max(2, len(str(total)))
    taken: list[tuple[str, str]] = []  # voices of all sets so far
    training: list[tuple[str, str]] = []
    speakers: dict[str, list[Speaker]] = {}
    for name, count in counts.items():
        in_set: list[tuple[str, str]] = []
        for k in range(count):
            female = k % 2 == 0  # alternate, for sets balanced in gender
            candidates = (v for v in voices if v not in taken)
            # ties go by the shuffled order
            voice = min(candidates, key=lambda v: voice_cost(v, female, training, in_set))
            taken.append(voice)
            in_set.append(voice)
        speakers[name] = [
            Speaker(
                f"synth{number:0{width}d}",
                f"{accent}+{variant}",
                rate=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
            )
            for number, (accent, variant) in enumerate(in_set, start=len(taken) - count + 1)
        ]
        training = training or in_set
    return speakers


def voice_cost(voice: tuple[str, str], female: bool, training: list, in_set: list) -> tuple:
    """How badly ``voice`` fits the next speaker of a set (smaller is better)."""
    accent, variant = voice
    # Held-out sets want accents and variants that training has, first ...
    unheard = (all(a != accent for a, _ in training), all(v != variant for _, v in training))
    # ... then the gender whose turn it is, then as many different accents and variants as possible.
    gender = (variant in FEMALE_VARIANTS) != female
    spread = (sum(a == accent for a, _ in in_set), sum(v == variant for _, v in in_set))
    return (unheard if training else ()) + (gender,) + spread


def utterance(
    speaker: Speaker, utt: str, seed: int, digits: tuple[int, int], rate: int, words: tuple[str, ...] = DIGIT_WORDS
) -> tuple[list[str], np.ndarray]:
    """(transcript words, float32 samples at ``rate``) of one utterance.

    Its random choices come from a generator of its own, seeded by (seed, utt):
    an utterance does not change when others are added or removed.
    """
    rng = np.random.default_rng([seed, zlib.crc32(utt.encode())])
    said = [words[d] for d in rng.integers(0, len(words), size=int(rng.integers(digits[0], digits[1] + 1)))]
    # Lower case: eSpeak may spell out an all-capitals word as an acronym.
    speech = synth.synthesize(" ".join(said).lower(), speaker.voice, speaker.rate, speaker.pitch)
    gain = np.float32(10.0 ** (rng.uniform(*GAIN_DB) / 20.0))
    lead, trail = (round(rng.uniform(*EDGE_SECONDS) * rate) for _ in range(2))
    samples = (rng.standard_normal(lead + len(speech) + trail) * SILENCE_STD).astype(np.float32)
    samples[lead : lead + len(speech)] += speech * gain
    return said, np.clip(samples, -1.0, 1.0)


def prepare(
    out_dir: str,
    seed: int = 1,
    utts_per_speaker: int = 60,
    min_digits: int = 1,
    max_digits: int = 5,
    num_train_speakers: int = 8,
    num_dev_speakers: int = 2,
    num_test_speakers: int = 2,
    words: tuple[str, ...] = DIGIT_WORDS,
) -> dict[str, DataDir]:
    """Synthesise the corpus, write and validate ``<out_dir>/{train,dev,test}``; returns the sets by name.

    ``out_dir`` goes into wav.scp as given, so a relative path stays relative
    (to the directory the recipe runs from).
    """
    counts = dict(zip(SETS, (num_train_speakers, num_dev_speakers, num_test_speakers)))
    speakers = choose_speakers(seed, counts)
    for name in SETS:
        for s in speakers[name]:
            log.info("%-5s speaker %s: voice %s, %d words/min, pitch %d", name, s.id, s.voice, s.rate, s.pitch)

    rate = synth.sample_rate()
    width = max(4, len(str(utts_per_speaker - 1)))
    sets = {name: DataDir() for name in SETS}
    written: set[Path] = set()
    progress = tqdm(
        total=sum(counts.values()) * utts_per_speaker,
        desc="synth_digits",
        unit="utt",
        file=sys.stderr,
        disable=None,
        leave=False,
    )
    for name in SETS:
        d = sets[name]
        for speaker in speakers[name]:
            for index in range(utts_per_speaker):
                utt = f"{speaker.id}-{index:0{width}d}"
                said, samples = utterance(speaker, utt, seed, (min_digits, max_digits), rate, words)
                entry = os.path.join(out_dir, "wav", speaker.id, f"{utt}.wav")
                write_wav(entry, samples, rate)
                written.add(Path(entry))
                d.wav_scp[utt] = entry
                d.text[utt] = " ".join(said)
                d.utt2spk[utt] = speaker.id
                d.utt2dur[utt] = len(samples) / rate
                progress.update()
    progress.close()
    # Audio of an earlier run with more speakers or utterances would linger.
    for stale in Path(out_dir, "wav").glob("*/*.wav"):
        if stale not in written:
            stale.unlink()
    for folder in Path(out_dir, "wav").iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    for name in SETS:
        sets[name].save(Path(out_dir, name))
        validate(Path(out_dir, name))
        hours = sum(sets[name].utt2dur.values()) / 3600
        log.info("%-5s %d speakers, %d utterances, %.3f hours", name, len(speakers[name]), len(sets[name].text), hours)
    total = sum(sum(d.utt2dur.values()) for d in sets.values()) / 3600
    log.info(
        "total %d utterances, %.3f hours of %d Hz audio in %s",
        sum(len(d.text) for d in sets.values()),
        total,
        rate,
        out_dir,
    )
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for what is written."
    )
    parser.add_argument("--out-dir", required=True, help="where the data directories go, e.g. data/synth_digits")
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of speakers, digits, silences and gains (default: %(default)s)"
    )
    parser.add_argument("--utts-per-speaker", type=int, default=60, help="default: %(default)s")
    parser.add_argument(
        "--min-digits", type=int, default=1, help="fewest digits in an utterance (default: %(default)s)"
    )
    parser.add_argument("--max-digits", type=int, default=5, help="most digits in an utterance (default: %(default)s)")
    parser.add_argument("--num-train-speakers", type=int, default=8, help="default: %(default)s")
    parser.add_argument("--num-dev-speakers", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--num-test-speakers", type=int, default=2, help="default: %(default)s")
    parser.add_argument(
        "--words",
        default=",".join(w.lower() for w in DIGIT_WORDS),
        help="the vocabulary, comma-separated, as eSpeak should say it; transcripts have it upper-cased "
        "(default: the digits zero to nine)",
    )
    args = parser.parse_args(argv)
    words = tuple(w.strip().upper() for w in args.words.split(",") if w.strip())
    if not words or any(not w.replace("'", "").isalpha() for w in words):
        parser.error(f"--words '{args.words}': give comma-separated words of letters (and apostrophes), e.g. yes,no")
    if args.seed < 0:
        parser.error("--seed must be 0 or more")
    for option in ("utts_per_speaker", "min_digits", "num_train_speakers", "num_dev_speakers", "num_test_speakers"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be 1 or more")
    if args.max_digits < args.min_digits:
        parser.error("--max-digits must be at least --min-digits")
    return run_preparation(
        log,
        lambda: prepare(
            args.out_dir,
            args.seed,
            args.utts_per_speaker,
            args.min_digits,
            args.max_digits,
            args.num_train_speakers,
            args.num_dev_speakers,
            args.num_test_speakers,
            words,
        ),
        (synth.EspeakError,),
    )


if __name__ == "__main__":
    sys.exit(main())
