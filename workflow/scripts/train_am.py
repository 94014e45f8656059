#!/usr/bin/env python3
"""Train the LSTM-CTC acoustic model; resume from the newest checkpoint if one exists.

    python workflow/scripts/train_am.py data/fsdd/fbank/train data/fsdd/fbank/dev exp/fsdd/tokens/sp.model exp/fsdd/am \
        --model '{"hidden": 256, "layers": 3}' --train '{"max_epochs": 30, "seed": 1}' --cmvn speaker

Writes exp/.../am/epoch-N.pt after every epoch, history.tsv, and final.pt: the
average of the best epochs with everything decoding needs (tokenizer, CMVN,
feature config), so final.pt alone is a usable model.
"""

import argparse
import logging

import numpy as np
import torch

from speechrecipe import checkpoint
from speechrecipe.cli import fail, json_or_file, setup_logging
from speechrecipe.dataset import FeatureSet, global_stats
from speechrecipe.features import stats_to_mean_std
from speechrecipe.model import CTCModel, ModelConfig, initialize_from
from speechrecipe.tokens import Tokenizer
from speechrecipe.training import TrainConfig, pick_device, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir")
    parser.add_argument("dev_dir")
    parser.add_argument("tokenizer")
    parser.add_argument("exp_dir")
    parser.add_argument("--model", type=json_or_file, default={}, help="model config (JSON or file)")
    parser.add_argument("--train", type=json_or_file, default={}, help="training config (JSON or file)")
    parser.add_argument("--features", type=json_or_file, default={}, help="feature config, stored with the model")
    parser.add_argument("--extra-train", nargs="*", default=[], metavar="FEAT_DIR",
                        help="more training feature directories (same features), e.g. another corpus's")
    parser.add_argument("--init", default="random",
                        help="'random', or a trained model to start from (exp dir, final.pt or bundle): fine-tuning")
    parser.add_argument("--cmvn", default="global", choices=["global", "speaker", "utterance", "none"])
    parser.add_argument("--max-frames", type=int, default=0, help="drop longer training utterances (0: keep all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--use-gpu", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    train_config = TrainConfig.from_dict(args.train)
    tokenizer = Tokenizer(args.tokenizer)

    stats = global_stats(args.train_dir)
    mean, std = stats_to_mean_std(stats)
    model_config = ModelConfig.from_dict({**args.model, "input_dim": len(mean), "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(train_config.seed)
    model = CTCModel(model_config)
    logging.info("model: %s, %.2f M parameters", model_config, sum(p.numel() for p in model.parameters()) / 1e6)
    if args.init != "random":
        initialize(model, tokenizer, args.init, args.features)

    subsampling = model.subsampling_factor
    train_set = FeatureSet(args.train_dir, args.cmvn, tokenizer, (mean, std), model.min_input_frames(),
                           subsampling, args.max_frames or None)
    for extra in args.extra_train:
        extra_set = FeatureSet(extra, args.cmvn, tokenizer, (mean, std), model.min_input_frames(), subsampling,
                               args.max_frames or None)
        if extra_set.dim != train_set.dim:
            fail(f"{extra}: {extra_set.dim}-dim features, but {args.train_dir} has {train_set.dim}: extra training "
                 "data must be extracted with the same feature config")
        logging.info("adding %d utterances of %s to the training set", len(extra_set), extra)
        train_set.utterances += extra_set.utterances
    dev_set = FeatureSet(args.dev_dir, args.cmvn, tokenizer, (mean, std), model.min_input_frames(), subsampling)

    # What identifies this training run: resuming is allowed only from checkpoints of the same one.
    hashed = {"model": model_config.to_dict(), "cmvn": args.cmvn, "init": args.init, "extra_train": args.extra_train, "train_dir": args.train_dir,
              "tokenizer": tokenizer.pieces, "features": args.features,
              "train": {k: v for k, v in vars(train_config).items() if k not in TrainConfig.NOT_HASHED}}
    extra = {"tokenizer": tokenizer.model_bytes, "cmvn": {"mode": args.cmvn, "global_stats": torch.from_numpy(stats)},
             "feature_config": args.features}
    device = {"auto": pick_device("auto"), "true": pick_device(True), "false": torch.device("cpu")}[args.use_gpu]
    logging.info("device: %s", device)
    train(model, train_set, dev_set, args.exp_dir, train_config, checkpoint.config_hash(hashed), extra, device,
          progress=not args.no_progress)


def initialize(model: CTCModel, tokenizer: Tokenizer, init: str, features: dict) -> None:
    """Fine-tuning: copy a pretrained model's weights into ``model`` (output units mapped by token)."""
    pretrained = checkpoint.load_final(init)
    if pretrained["model_config"]["input_dim"] != model.config.input_dim:
        fail(f"am.init {init}: that model takes {pretrained['model_config']['input_dim']}-dim features, these are "
             f"{model.config.input_dim}-dim. Fix: use the same feature config as the pretrained model "
             f"({pretrained['feature_config']}).")
    if pretrained.get("feature_config") != features:
        logging.warning("am.init %s was trained on other features (%s, here %s)", init,
                        pretrained.get("feature_config"), features)
    report = initialize_from(model, pretrained["model"], tokenizer.pieces, Tokenizer(bytes(pretrained["tokenizer"])).pieces)
    logging.info("initialized from %s: %d tensors copied, output layer %s, skipped %s", init,
                 len(report["copied"]), report["mapped"] or "not mapped", report["skipped"] or "none")


if __name__ == "__main__":
    main()
