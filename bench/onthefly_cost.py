#!/usr/bin/env python3
"""What on-the-fly augmentation (am.train.onthefly) costs per epoch, against reading precomputed features.

    .venv/bin/python bench/onthefly_cost.py [--takes 10] [--workers 0] [--epochs 2] [--threads 1]

Data: FSDD, speakers george, jackson and lucas (takes 0..N-1 of every digit), MFCC of conf/fsdd.yaml,
written by the recipe's own make_features.py and gather_features.py into a temporary folder, once
clean and once with the speed copies of features.speed_perturb [0.9, 1.0, 1.1].

Each variant makes every training batch of ``--epochs`` epochs through the DataLoader the trainer
uses (``--workers`` loader workers), without a model, so what is timed is the data side alone:

- stored: the clean features read from their archive and normalized (what training does today);
- stored_sp: the same from the precomputed speed copies (three times the utterances per epoch);
- onthefly_speed: am.train.onthefly with speed_perturb [0.9, 1.0, 1.1];
- onthefly_speed_noise: the same plus Speech Commands noise, noise_probability 0.5.

Printed per variant: utterances per epoch, seconds per epoch, milliseconds per utterance. Also the
one-off cost of the precomputed copies: the wall time of make_features.py with three speed factors,
and the size of its archive. Each variant runs twice and the faster run counts (the machine is shared);
the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import FEATURES, FSDD, ROOT

from speechrecipe.audio import duration
from speechrecipe.cmvn import global_stats, stats_to_mean_std
from speechrecipe.config import AMTrainConfig, OnTheFlyConfig
from speechrecipe.ctc_task import NO_SPECAUG, CTCBatches
from speechrecipe.datadir import DataDir
from speechrecipe.dataset import FeatureSet
from speechrecipe.onthefly import OnTheFly, audio_table
from speechrecipe.text import DIGIT_WORDS
from speechrecipe.trainer import RunBatches

SPEAKERS = ("george", "jackson", "lucas")
FACTORS = [0.9, 1.0, 1.1]
NOISE = ROOT.parent / "shared" / "data" / "noise" / "speech_commands"


def write_data_dir(out: Path, takes: int) -> float:
    """FSDD as a Kaldi data directory; returns its seconds of audio."""
    data = DataDir()
    for spk in SPEAKERS:
        for digit in range(10):
            for take in range(takes):
                utt = f"{spk}-{digit}_{take:02d}"
                data.wav_scp[utt] = str(FSDD / f"{digit}_{spk}_{take}.wav")
                data.text[utt] = DIGIT_WORDS[digit]
                data.utt2spk[utt] = spk
                data.utt2dur[utt] = duration(data.wav_scp[utt])
    data.save(out)
    return sum(data.utt2dur.values())


def make_features(data_dir: Path, feat_dir: Path, factors: list[float]) -> float:
    """Features of a data directory by the recipe's scripts (one job); returns make_features.py's wall time."""
    config = json.dumps(FEATURES.to_dict())
    speeds = ["--speed-perturb", *map(str, factors)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    started = time.perf_counter()
    script = ROOT / "workflow/scripts/make_features.py"
    subprocess.run([sys.executable, script, data_dir, feat_dir, "--config", config, *speeds], check=True, env=env)
    seconds = time.perf_counter() - started
    script = ROOT / "workflow/scripts/gather_features.py"
    subprocess.run([sys.executable, script, data_dir, feat_dir, *speeds], check=True, env=env)
    return seconds


def one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)


def epoch_seconds(maker: CTCBatches, epochs: int, workers: int) -> float:
    """Wall time per epoch of making every batch of ``epochs`` epochs, the faster of two runs."""
    config = AMTrainConfig(batch_frames=2000, seed=1)
    best = float("inf")
    for _ in range(2):
        plan = RunBatches(maker, config, first_epoch=1, position=0, last_epoch=epochs, rank=0, world=1)
        loader = torch.utils.data.DataLoader(
            plan,
            batch_size=None,
            num_workers=workers,
            prefetch_factor=4 if workers else None,
            worker_init_fn=one_thread,
        )
        started = time.perf_counter()
        for _ in loader:
            pass
        best = min(best, (time.perf_counter() - started) / epochs)
    return best


def variants(base: Path) -> dict[str, CTCBatches]:
    mean_std = stats_to_mean_std(global_stats(base / "mfcc/train"))
    clean = FeatureSet(base / "mfcc/train", "global", None, mean_std)
    copies = FeatureSet(base / "mfcc/train_sp", "global", None, mean_std)
    audio = audio_table(base / "data/train", clean.utts)

    def onthefly(**config) -> CTCBatches:
        return CTCBatches(clean, NO_SPECAUG, 1, onthefly=OnTheFly(OnTheFlyConfig(**config), audio, FEATURES, 1))

    found = {
        "stored": CTCBatches(clean, NO_SPECAUG, 1),
        "stored_sp": CTCBatches(copies, NO_SPECAUG, 1),
        "onthefly_speed": onthefly(speed_perturb=FACTORS),
    }
    if NOISE.is_dir():
        found["onthefly_speed_noise"] = onthefly(speed_perturb=FACTORS, noise_dirs=[str(NOISE)], noise_probability=0.5)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=10, help="takes of every digit per speaker (at most 50)")
    parser.add_argument("--workers", type=int, default=0, help="loader workers, as am.loader_workers")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not FSDD.is_dir():
        raise SystemExit(f"FSDD not found at {FSDD} (the shared data folder beside the project)")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        audio_seconds = write_data_dir(base / "data/train", args.takes)
        make_features(base / "data/train", base / "mfcc/train", [1.0])
        copy_seconds = make_features(base / "data/train", base / "mfcc/train_sp", FACTORS)
        copy_bytes = sum(p.stat().st_size for p in (base / "mfcc/train_sp/data").glob("*.ark"))
        print(f"FSDD {len(SPEAKERS)} speakers x 10 digits x {args.takes} takes: {audio_seconds:.0f} s of audio")
        print(f"precomputed speed copies (x{len(FACTORS)}): {copy_seconds:.1f} s once, {copy_bytes / 1e6:.1f} MB")
        print(f"{'variant':<22} {'utts/epoch':>10} {'s/epoch':>8} {'ms/utt':>7}   ({args.workers} loader workers)")
        for name, maker in variants(base).items():
            seconds = epoch_seconds(maker, args.epochs, args.workers)
            utts = len(maker.data)
            print(f"{name:<22} {utts:>10} {seconds:>8.2f} {1000 * seconds / utts:>7.2f}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
