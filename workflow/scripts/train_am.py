#!/usr/bin/env python3
"""Train the LSTM-CTC acoustic model; resume from the newest checkpoint if one exists.

    python workflow/scripts/train_am.py data/fsdd/fbank/train data/fsdd/fbank/dev exp/fsdd/tokens/sp.model exp/fsdd/am \
        --model '{"hidden": 256, "layers": 3}' --train '{"max_epochs": 30, "seed": 1}' --cmvn speaker

Writes exp/.../am/epoch-N.pt after every epoch, history.tsv, and final.pt: the
average of the best epochs with everything decoding needs (tokenizer, CMVN,
feature config), so final.pt alone is a usable model. --model, --train and
--features are the config sections am.model, am.train and features (JSON or a
file); an unknown key is an error.

Several processes (DistributedDataParallel, speechrecipe.trainer): with --num-gpus G > 1
or --num-nodes N > 1 this script re-executes itself under torchrun, G processes per node, each
on its own GPU (NCCL) or, without CUDA, on the CPU (gloo); see speechrecipe.distributed:

    python workflow/scripts/train_am.py ... --num-gpus 2                 # one node: torchrun --standalone
    python workflow/scripts/train_am.py ... --num-gpus 4 --num-nodes 2   # inside a SLURM job of 2 nodes

Only rank 0 logs and writes files; re-running resumes like a single process.
"""

import argparse
import logging
import os
import sys

import numpy as np
import torch

from speechrecipe import distributed
from speechrecipe.archive import ArchiveError
from speechrecipe.cli import add_section, fail, fail_on_damaged_features, setup_logging
from speechrecipe.cmvn import global_stats, stats_to_mean_std
from speechrecipe.config import CMVN_MODES, AMConfig, AMTrainConfig, FeatureConfig, ModelConfig, run_hash
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import FeatureSet, TokenCoverageError, trainability_problems
from speechrecipe.model.network import CTCModel, sized_for_data
from speechrecipe.model.pretrained import PretrainedError, initialize
from speechrecipe.noise import NoiseError
from speechrecipe.onthefly import OnTheFly, audio_table
from speechrecipe.tokens import Tokenizer
from speechrecipe.trainer import train

log = logging.getLogger("train_am")

DEFAULTS = AMConfig()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir")
    parser.add_argument("dev_dir")
    parser.add_argument("tokenizer")
    parser.add_argument("exp_dir")
    add_section(parser, "--model", ModelConfig, "am.model", DEFAULTS.model, "model config")
    add_section(parser, "--train", AMTrainConfig, "am.train", DEFAULTS.train, "training config")
    add_section(
        parser, "--features", FeatureConfig, "features", FeatureConfig(), "feature config, stored with the model"
    )
    parser.add_argument(
        "--extra-train",
        nargs="*",
        default=[],
        metavar="FEAT_DIR",
        help="more training feature directories (same features), e.g. another corpus's",
    )
    parser.add_argument(
        "--init",
        default=DEFAULTS.init,
        help="'random', or a trained model to start from (exp dir, final.pt or bundle): fine-tuning",
    )
    parser.add_argument("--cmvn", default=DEFAULTS.cmvn, choices=CMVN_MODES)
    parser.add_argument(
        "--audio-dir",
        default="",
        metavar="DATA_DIR",
        help="the training set's Kaldi data directory (wav.scp): the audio of --train's onthefly augmentation",
    )
    parser.add_argument(
        "--size-from",
        default="",
        metavar="DIR",
        help='where --model\'s "auto" sizes take the training hours from: a Kaldi data or feature directory '
        "(default: TRAIN_DIR; the recipe gives the training set as prepared, before speed perturbation)",
    )
    parser.add_argument(
        "--max-frames", type=int, default=DEFAULTS.max_frames, help="drop longer training utterances (0: keep all)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS.threads,
        help="CPU threads on each node, shared by its --num-gpus processes",
    )
    parser.add_argument("--use-gpu", default=str(DEFAULTS.use_gpu), choices=["auto", "true", "false"])
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=DEFAULTS.num_gpus,
        help="training processes per node: one per GPU, or gloo processes on the CPU without CUDA",
    )
    parser.add_argument(
        "--num-nodes", type=int, default=DEFAULTS.num_nodes, help="nodes (several only inside a SLURM job)"
    )
    parser.add_argument(
        "--log-every", type=int, default=0, metavar="STEPS", help="log the loss every STEPS steps (0: per epoch only)"
    )
    parser.add_argument(
        "--in-memory",
        type=int,
        choices=[0, 1],
        nargs="?",
        const=1,
        default=int(DEFAULTS.in_memory),
        help="1 (or the flag alone): read every feature matrix once into memory (the same results; small corpora)",
    )
    parser.add_argument(
        "--loader-workers",
        type=int,
        default=DEFAULTS.loader_workers,
        help="processes that read and prepare batches ahead of training (0: this one)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.num_gpus < 1 or args.num_nodes < 1:
        parser.error("--num-gpus and --num-nodes must be at least 1")
    return args


def load_sets(args, tokenizer, mean_std, model) -> tuple[FeatureSet, FeatureSet]:
    """The training set (plus --extra-train) and the dev set, normalized, with token targets."""
    limits = {
        "min_frames": model.min_input_frames(),
        "subsampling_factor": model.subsampling_factor,
        "in_memory": args.in_memory,
    }
    train_set = FeatureSet(args.train_dir, args.cmvn, tokenizer, mean_std, max_frames=args.max_frames or None, **limits)
    for extra in args.extra_train:
        extra_set = FeatureSet(extra, args.cmvn, tokenizer, mean_std, max_frames=args.max_frames or None, **limits)
        if extra_set.dim != train_set.dim:
            fail(
                f"{extra}: {extra_set.dim}-dim features, but {args.train_dir} has {train_set.dim}: extra training "
                "data must be extracted with the same feature config"
            )
        log.info("adding %d utterances of %s to the training set", len(extra_set), extra)
        train_set.extend(extra_set)
    return train_set, FeatureSet(args.dev_dir, args.cmvn, tokenizer, mean_std, **limits)


def onthefly_augmentation(args, train_set: FeatureSet) -> OnTheFly | None:
    """am.train.onthefly's augmentation of the training set from the audio of --audio-dir, or None when off."""
    config = args.train.onthefly
    if not config.enabled:
        return None
    if not args.audio_dir:
        fail("am.train.onthefly needs the training set's audio: give --audio-dir (its Kaldi data directory)")
    try:
        onthefly = OnTheFly(config, audio_table(args.audio_dir, train_set.utts), args.features, args.train.seed)
    except NoiseError as e:
        fail(f"am.train.onthefly.noise_dirs: {e}")
    if not onthefly.audio:
        fail(
            f"{args.audio_dir} holds none of the utterances of {args.train_dir}: give the training set's data directory"
        )
    log.info(
        "on-the-fly augmentation of %d of %d training utterances (the rest from their stored features): "
        "speed %s, %d noise file(s) at %s dB with probability %g",
        len(onthefly.audio),
        len(train_set),
        onthefly.factors,
        len(onthefly.noises),
        "/".join(f"{s:g}" for s in config.snrs),
        config.noise_probability if onthefly.noises else 0,
    )
    return onthefly


def main() -> None:
    args = parse_args()
    rank, world = distributed.environment_rank_and_size()
    setup_logging(rank)
    if (args.num_gpus > 1 or args.num_nodes > 1) and not distributed.under_torchrun():
        try:  # re-executes this script under torchrun: does not return
            distributed.launch(__file__, sys.argv[1:], args.num_gpus, args.num_nodes, args.threads, args.use_gpu)
        except distributed.LaunchError as e:
            fail(str(e))
    log.info(
        "job environment: SLURM_JOB_ID=%s CUDA_VISIBLE_DEVICES=%s host=%s",
        os.environ.get("SLURM_JOB_ID", "-"),
        os.environ.get("CUDA_VISIBLE_DEVICES", "-"),
        os.uname().nodename,
    )
    torch.set_num_threads(max(1, args.threads // args.num_gpus) if world > 1 else args.threads)
    config = args.train
    tokenizer = Tokenizer(args.tokenizer)
    stats = global_stats(args.train_dir)
    mean, std = stats_to_mean_std(stats)
    model_config = sized_for_data(args.model, args.size_from or args.train_dir, args.features.frame_shift_ms)
    model_config = model_config.replace(input_dim=len(mean), vocab_size=tokenizer.vocab_size)
    torch.manual_seed(config.seed)
    model = CTCModel(model_config)
    log.info("model: %s, %.2f M parameters", model_config, sum(p.numel() for p in model.parameters()) / 1e6)
    features = args.features.to_dict()
    try:
        frozen = initialize(model, tokenizer.pieces, args.init, features) if args.init != "random" else []
    except PretrainedError as e:
        fail(str(e))
    try:
        train_set, dev_set = load_sets(args, tokenizer, (mean, std), model)
    except ArchiveError as e:
        fail_on_damaged_features(e)
    except TokenCoverageError as e:
        fail(str(e))
    except ValueError as e:  # no usable utterance at all
        fail(f"{e}. Fix: am.model.subsampling_factor: 2 (or subsampling: none), or check the data.")
    problems = trainability_problems(
        train_set, model.subsampling_factor, args.features.frame_shift_ms, from_scratch=args.init == "random"
    )
    if problems:
        fail(f"{args.train_dir}: " + " ".join(problems))
    median_seconds = float(np.median(train_set.lengths)) * args.features.frame_shift_ms / 1000
    concat = config.concat.resolved(median_seconds)
    log.info(
        "joining utterances into longer examples (train.concat): %s (mode %s; median training utterance %.2f s)",
        "on" if concat.probability else "off",
        config.concat.mode,
        median_seconds,
    )
    run = run_hash(
        config,
        model=model_config.to_dict(),
        cmvn=args.cmvn,
        init=args.init,
        extra_train=args.extra_train,
        train_dir=args.train_dir,
        tokenizer=tokenizer.pieces,
        features=features,
    )
    extra = {
        "tokenizer": tokenizer.model_bytes,
        "cmvn": {"mode": args.cmvn, "global_stats": torch.from_numpy(stats)},
        "feature_config": features,
    }
    device = distributed.pick_device(args.use_gpu)
    if world > 1:
        device = distributed.join(device)
    log.info("device: %s", device)
    train(
        CTCTask(
            model,
            train_set,
            dev_set,
            config.specaug,
            config.seed,
            concat,
            args.features.frame_shift_ms,
            onthefly_augmentation(args, train_set),
        ),
        args.exp_dir,
        config,
        run,
        extra,
        device,
        progress=not args.no_progress and rank == 0,
        log_every=args.log_every,
        select_by=config.select_by,
        frozen=frozen,
        freeze_steps=config.freeze_steps,
        loader_workers=args.loader_workers,
    )
    distributed.leave()


if __name__ == "__main__":
    main()
