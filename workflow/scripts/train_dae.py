#!/usr/bin/env python3
"""Train the denoising autoencoder on parallel (noisy, clean) features; resume if checkpoints exist.

    python workflow/scripts/train_dae.py data/fsdd/mfcc/train_all_noisy data/fsdd/mfcc/train_all \
        data/fsdd/mfcc/dev_all_noisy data/fsdd/mfcc/dev_all exp/fsdd/dae \
        --model '{"hidden": 128, "layers": 2}' --layers 2 --train '{"max_epochs": 10, "seed": 1}' --cmvn speaker

The noisy and clean directories hold the same utterance ids (mix_noise.py keeps them). The
input is normalized like the acoustic model's (--cmvn; the noisy set's own speaker statistics
with 'speaker'), the target by the clean set's. Writes epoch-N.pt, history.tsv and final.pt
(kind 'dae'), whose encoder `am.init: dae` copies into the acoustic model.
"""

import argparse
import logging

import torch

from speechrecipe import checkpoint
from speechrecipe.cli import fail, json_or_file, setup_logging
from speechrecipe.dae import DenoisingAutoencoder, parallel_set
from speechrecipe.dae_training import DAETrainConfig, train
from speechrecipe.dataset import FeatureSet, global_stats
from speechrecipe.features import stats_to_mean_std
from speechrecipe.model import ModelConfig
from speechrecipe.training import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("noisy_train_dir")
    parser.add_argument("clean_train_dir")
    parser.add_argument("noisy_dev_dir")
    parser.add_argument("clean_dev_dir")
    parser.add_argument("exp_dir")
    parser.add_argument("--model", type=json_or_file, default={}, help="the acoustic model's config (JSON or file)")
    parser.add_argument("--layers", type=int, required=True, help="LSTM layers of the DAE encoder")
    parser.add_argument("--train", type=json_or_file, default={}, help="DAE training config (JSON or file)")
    parser.add_argument("--features", type=json_or_file, default={}, help="feature config, stored with the model")
    parser.add_argument("--cmvn", default="global", choices=["global", "speaker", "utterance", "none"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--use-gpu", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    config = DAETrainConfig.from_dict(args.train)
    stats = global_stats(args.clean_train_dir)
    mean_std = stats_to_mean_std(stats)
    model_config = ModelConfig.from_dict({**args.model, "input_dim": len(mean_std[0])})
    torch.manual_seed(config.seed)
    try:
        model = DenoisingAutoencoder(model_config, args.layers)
    except ValueError as e:
        fail(f"dae.layers: {e}")
    min_frames = model.factor  # one encoder frame at least
    sets = [FeatureSet(d, args.cmvn, None, mean_std, min_frames) for d in
            (args.noisy_train_dir, args.clean_train_dir, args.noisy_dev_dir, args.clean_dev_dir)]
    train_pairs, dev_pairs = parallel_set(sets[0], sets[1]), parallel_set(sets[2], sets[3])
    hashed = {"model": model.config.to_dict(), "cmvn": args.cmvn, "features": args.features,
              "train_dirs": [args.noisy_train_dir, args.clean_train_dir],
              "train": {k: v for k, v in vars(config).items() if k not in DAETrainConfig.NOT_HASHED}}
    extra = {"cmvn": {"mode": args.cmvn, "global_stats": torch.from_numpy(stats)}, "feature_config": args.features}
    device = torch.device("cpu") if args.use_gpu == "false" else pick_device(args.use_gpu == "true" or "auto")
    logging.info("device: %s", device)
    train(model, train_pairs, dev_pairs, args.exp_dir, config, checkpoint.config_hash(hashed), extra, device,
          progress=not args.no_progress)


if __name__ == "__main__":
    main()
