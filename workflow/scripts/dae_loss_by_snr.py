#!/usr/bin/env python3
"""The trained DAE's reconstruction error on the dev set, by noise condition and SNR, against doing nothing.

    python workflow/scripts/dae_loss_by_snr.py exp/fsdd/dae data/fsdd/mfcc/dev_all data/fsdd/dev_all exp/fsdd/plots \\
        --noise sc=../shared/data/noise/speech_commands babble=data/fsdd/noise_generated/babble.wav --snrs 0 5 10 20

Each dev utterance is mixed with each condition's noise at each SNR (one fixed draw of file and offset per
utterance, from --seed, as the DAE's own dev checks), normalized as the DAE's input was (its final.pt
holds the CMVN mode and the training statistics), and the DAE's prediction is scored against the clean
features (mean squared error per value, as its dev_loss). ``input_loss`` is the same error of the noisy
input itself, so the gap is what the DAE removes; a condition left out of its training (babble) shows
whether that carries over. Writes dae_loss_by_snr.tsv and dae_loss_by_snr.png in OUT_DIR.
"""

import argparse
import logging

import pandas as pd
import torch

from speechrecipe import checkpoint, plots
from speechrecipe.batching import bucket_batches
from speechrecipe.cli import fail, setup_logging
from speechrecipe.cmvn import stats_to_mean_std
from speechrecipe.config import FeatureConfig, OnTheFlyConfig
from speechrecipe.dataset import FeatureSet, collate_pairs
from speechrecipe.fileio import atomic_open
from speechrecipe.model import load_dae
from speechrecipe.model.dae import reconstruction_loss
from speechrecipe.noise import NoiseError
from speechrecipe.onthefly import DEV_EPOCH, MixedPairs, OnTheFly, audio_table

log = logging.getLogger("dae_loss_by_snr")


def errors(model, pairs: MixedPairs) -> tuple[float, float]:
    """(the DAE's error, the noisy input's own error) per value over the real frames of every dev pair."""
    predicted_sum, predicted_count, input_sum, input_count = 0.0, 0, 0.0, 0
    with torch.no_grad():
        for batch in bucket_batches(list(pairs.lengths), 4000):
            made = [pairs.pair(i, DEV_EPOCH) for i in batch]
            noisy, clean, lengths = collate_pairs(made)
            summed, values = reconstruction_loss(model, noisy, clean, lengths)
            predicted_sum, predicted_count = predicted_sum + float(summed), predicted_count + values
            for _, noisy_feats, clean_feats in made:
                input_sum += float(((noisy_feats - clean_feats) ** 2).sum())
                input_count += noisy_feats.size
    return predicted_sum / max(predicted_count, 1), input_sum / max(input_count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dae_dir", help="the DAE's experiment directory (final.pt)")
    parser.add_argument("clean_dev_dir", help="the dev set's clean features")
    parser.add_argument("dev_data_dir", help="the dev set's Kaldi data directory (its audio)")
    parser.add_argument("out_dir")
    parser.add_argument(
        "--noise",
        nargs="+",
        required=True,
        metavar="NAME=SOURCE",
        help="noise conditions: a folder or file each; a NAME given several times draws from all its sources",
    )
    parser.add_argument("--snrs", nargs="+", type=float, default=[0, 5, 10, 20])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    final = checkpoint.load(f"{args.dae_dir}/final.pt")
    model = load_dae(f"{args.dae_dir}/final.pt")
    features = FeatureConfig.from_dict(final["feature_config"])
    mode = final["cmvn"]["mode"]
    mean_std = stats_to_mean_std(final["cmvn"]["global_stats"].numpy())
    dev = FeatureSet(args.clean_dev_dir, mode, None, mean_std, model.min_input_frames())
    audio = audio_table(args.dev_data_dir, dev.utts)
    conditions: dict[str, list[str]] = {}
    for condition in args.noise:
        name, _, source = condition.partition("=")
        if not source:
            fail(f"--noise {condition}: give NAME=SOURCE (a noise folder or file)")
        conditions.setdefault(name, []).append(source)
    rows = []
    for name, sources in conditions.items():
        for snr in args.snrs:
            try:
                mixing = OnTheFly(
                    OnTheFlyConfig(noise_dirs=sources, snrs=[snr], noise_probability=1.0), audio, features, args.seed
                )
            except NoiseError as e:
                fail(str(e))
            dae_loss, input_loss = errors(model, MixedPairs(dev, mixing))
            log.info("%s %g dB: DAE %.4f, noisy input %.4f", name, snr, dae_loss, input_loss)
            rows.append({"noise": name, "snr": snr, "dev_loss": dae_loss, "input_loss": input_loss})
    table = pd.DataFrame(rows)
    with atomic_open(f"{args.out_dir}/dae_loss_by_snr.tsv") as f:
        table.to_csv(f, sep="\t", index=False, float_format="%.5f")
    plots.dae_loss_by_snr(table, f"{args.out_dir}/dae_loss_by_snr.png")
    log.info("wrote %s/dae_loss_by_snr.tsv and .png (%d conditions)", args.out_dir, len(table))


if __name__ == "__main__":
    main()
