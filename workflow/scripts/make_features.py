#!/usr/bin/env python3
"""Compute Kaldi-compatible features for one job's share of a data directory.

    python workflow/scripts/make_features.py data/fsdd/train data/fsdd/fbank/train --job 1 --nj 4 \
        --config '{"type": "fbank", "num_mel_bins": 80, "sample_rate": 16000}' --speed-perturb 0.9 1.0 1.1

Job j of nj takes the j-th contiguous slice of the sorted utterances and writes
<out-dir>/data/feats.<j>.ark and .scp (speechrecipe.archive). With speed perturbation every
utterance is computed once per factor, as 'sp<factor>-<utt>' (factor 1 keeps the id).

A job killed at any point leaves either both files complete or no .scp at all; temporaries
left by a killed earlier run of the same job are removed when it starts again. Recordings
that were mixed down to mono or resampled are counted in the log.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechrecipe.archive import matrix_writer
from speechrecipe.audio import AudioError, FormatReport, read_audio
from speechrecipe.augment import perturbed_id, speed_perturb
from speechrecipe.cli import fail, section, setup_logging
from speechrecipe.config import FeatureConfig
from speechrecipe.datadir import DataDir, job_slice
from speechrecipe.features import compute_many
from speechrecipe.fileio import remove_stale_temporaries

log = logging.getLogger("make_features")


# Utterances whose features are computed in one pass (speechrecipe.features.Extractor): short
# utterances gain most; a group of long recordings is bounded by their audio, read once anyway.
GROUP = 64


def audio_of(data: DataDir, data_dir: str, utt: str, factor: float, report) -> tuple[np.ndarray, int]:
    """One utterance's samples at one speed; a readable error naming the utterance when the audio is bad."""
    entry, start, end = data.entry(utt)
    try:
        samples, rate = read_audio(entry, start, end, report=report, name=utt)
    except AudioError as e:
        fail(f"{data_dir}/wav.scp: utterance '{utt}': {e}. Fix the entry or remove the utterance, then re-run.")
    if not np.isfinite(samples).all():
        # NaN or inf samples (a corrupt float WAV) would poison the CMVN statistics of
        # the whole speaker, and every training batch the utterance lands in.
        fail(
            f"{data_dir}/wav.scp: utterance '{utt}' ({entry}) gives non-finite features: the audio holds NaN or "
            "infinite samples. Fix: re-encode or replace the recording, or remove the utterance from the data "
            "directory."
        )
    return speed_perturb(samples, rate, factor), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--job", type=int, default=1)
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument(
        "--config",
        type=section(FeatureConfig, "features"),
        default=FeatureConfig(),
        help="feature config (JSON or a YAML/JSON file)",
    )
    parser.add_argument("--speed-perturb", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    setup_logging()
    import torch

    torch.set_num_threads(1)  # one job, one core: parallelism comes from running nj jobs
    config = args.config
    data = DataDir.load(args.data_dir)
    utterances = job_slice(data.utterances, args.job, args.nj)
    out = Path(args.out_dir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    ark, scp = out / f"feats.{args.job}.ark", out / f"feats.{args.job}.scp"
    for stale in remove_stale_temporaries(ark, scp):
        log.info("removed %s, left by an interrupted run of this job", stale)
    log.info(
        "job %d/%d: %d utterances x %d speed factor(s), %s",
        args.job,
        args.nj,
        len(utterances),
        len(args.speed_perturb),
        config,
    )
    frames, written, empty = 0, 0, []
    report = FormatReport(config.sample_rate)
    with matrix_writer(ark, scp) as writer:
        for first in tqdm(range(0, len(utterances), GROUP), desc=f"features job {args.job}", mininterval=5):
            for factor in args.speed_perturb:
                group = utterances[first : first + GROUP]
                # Each recording is counted once in the report, not once per speed factor.
                counted = report if factor == args.speed_perturb[0] else None
                audio = [audio_of(data, args.data_dir, utt, factor, counted) for utt in group]
                for utt, feats in zip(group, compute_many(audio, config), strict=True):
                    if len(feats) == 0:
                        empty.append(perturbed_id(utt, factor))
                    writer(perturbed_id(utt, factor), feats)
                    frames += len(feats)
                    written += 1
    for line in report.lines():
        log.info("%s", line)
    if empty:
        log.warning(
            "%d utterance(s) shorter than one %g ms frame have no features (kept as empty matrices, "
            "dropped with a count when the features are loaded): %s",
            len(empty),
            config.frame_length_ms,
            ", ".join(empty[:5]),
        )
    log.info("wrote %s: %d matrices, %d frames", ark, written, frames)


if __name__ == "__main__":
    main()
