#!/usr/bin/env python3
"""Compute Kaldi-compatible features for one job's share of a data directory.

    python workflow/scripts/make_features.py data/fsdd/train data/fsdd/fbank/train --job 1 --nj 4 \
        --config '{"type": "fbank", "num_mel_bins": 80, "sample_rate": 16000}' --speed-perturb 0.9 1.0 1.1

Job j of nj takes the j-th contiguous slice of the sorted utterances and writes
<out-dir>/data/feats.<j>.ark and .scp (kaldiio). With speed perturbation every
utterance is computed once per factor, as 'sp<factor>-<utt>' (factor 1 keeps the id).
"""

import argparse
import logging
import os
from pathlib import Path

import kaldiio
from tqdm import tqdm

from speechrecipe.audio import AudioError
from speechrecipe.cli import fail, json_or_file, setup_logging
from speechrecipe.datadir import DataDir
from speechrecipe.features import FeatureConfig, compute_entry
from speechrecipe.fileio import atomic_path


def perturbed_id(utt_or_spk: str, factor: float) -> str:
    return utt_or_spk if factor == 1.0 else f"sp{factor:g}-{utt_or_spk}"


def job_slice(utterances: list, job: int, nj: int) -> list:
    n = len(utterances)
    return utterances[(job - 1) * n // nj: job * n // nj]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--job", type=int, default=1)
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--config", type=json_or_file, default={}, help="feature config (JSON or a YAML/JSON file)")
    parser.add_argument("--speed-perturb", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    setup_logging()
    import torch

    torch.set_num_threads(1)  # one job, one core: parallelism comes from running nj jobs
    config = FeatureConfig.from_dict(args.config)
    data = DataDir.load(args.data_dir)
    utterances = job_slice(data.utterances, args.job, args.nj)
    out = Path(args.out_dir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    ark, scp = out / f"feats.{args.job}.ark", out / f"feats.{args.job}.scp"
    logging.info("job %d/%d: %d utterances x %d speed factor(s), %s", args.job, args.nj, len(utterances),
                 len(args.speed_perturb), config)
    frames = 0
    with atomic_path(ark) as tmp_ark, atomic_path(scp) as tmp_scp:
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            for utt in tqdm(utterances, desc=f"features job {args.job}", mininterval=5):
                segment = data.segments.get(utt)
                entry = data.wav_scp[segment[0] if segment else utt]
                for factor in args.speed_perturb:
                    try:
                        feats = compute_entry(entry, config, factor, segment)
                    except AudioError as e:
                        fail(f"{args.data_dir}/wav.scp: utterance '{utt}': {e}. Fix the entry or remove the "
                             "utterance, then re-run.")
                    writer(perturbed_id(utt, factor), feats)
                    frames += len(feats)
        # The scp names the archive it was written to: point it at the final name.
        lines = tmp_scp.read_text().splitlines()
        tmp_scp.write_text("".join(line.replace(str(tmp_ark), str(ark)) + "\n" for line in lines))
    logging.info("wrote %s: %d matrices, %d frames", ark, len(lines), frames)


if __name__ == "__main__":
    main()
