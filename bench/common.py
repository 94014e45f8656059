"""What the training and decoding benchmarks share: FSDD features and a tokenizer, built in memory with the
recipe's own code (the model and settings of conf/fsdd.yaml), so that a benchmark needs no recipe run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from speechrecipe import tokens
from speechrecipe.cmvn import accumulate_stats, normalize, stats_to_mean_std
from speechrecipe.config import FeatureConfig
from speechrecipe.dataset import FeatureSet, Utterance
from speechrecipe.features import compute
from speechrecipe.text import DIGIT_WORDS

FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
FEATURES = FeatureConfig(type="mfcc", num_ceps=13, num_mel_bins=23, sample_rate=8000)  # conf/fsdd.yaml
MODEL = {
    "hidden": 128,
    "layers": 2,
    "bidirectional": True,
    "subsampling": "stack",
    "subsampling_factor": 3,
    "dropout": 0.3,
}
TRAIN = {
    "batch_frames": 2000,
    "lr": 0.002,
    "warmup_steps": 100,
    "average_best": 3,
    "seed": 1,
    "specaug": {"freq_masks": 2, "freq_width": 5, "time_masks": 2, "time_width": 0.05},
}


def fsdd_sets(train_speakers, dev_speakers, takes, workdir: Path):
    """(train FeatureSet, dev FeatureSet, tokenizer, audio seconds by set) of FSDD, speaker CMVN, like the recipe."""
    if not FSDD.is_dir():
        raise SystemExit(f"FSDD not found at {FSDD} (the shared data folder beside the project)")
    tokenizer = tokens.train([" ".join(DIGIT_WORDS)] * 3 + list(DIGIT_WORDS), workdir / "sp.model", vocab_size=32)
    sets, seconds = [], []
    for speakers in (train_speakers, dev_speakers):
        raw, audio = [], 0.0
        for spk in speakers:
            for digit in range(10):
                for take in takes:
                    samples, rate = soundfile.read(FSDD / f"{digit}_{spk}_{take}.wav", dtype="float32")
                    audio += len(samples) / rate
                    raw.append((f"{spk}-{digit}_{take:02d}", spk, compute(samples, rate, FEATURES), DIGIT_WORDS[digit]))
        data = FeatureSet.__new__(FeatureSet)
        data.feat_dir = workdir
        data.utterances = []
        for spk in speakers:
            stats = accumulate_stats([f for _, s, f, _ in raw if s == spk])
            for utt, s, feats, text in raw:
                if s == spk:
                    data.utterances.append(
                        Utterance(utt, normalize(feats, "speaker", stats), tokenizer.encode(text), text)
                    )
        sets.append(data)
        seconds.append(audio)
    return sets[0], sets[1], tokenizer, seconds


def global_stats_of(data) -> np.ndarray:
    return accumulate_stats([u.feats for u in data.utterances])


__all__ = ["FEATURES", "MODEL", "TRAIN", "fsdd_sets", "global_stats_of", "stats_to_mean_std"]
