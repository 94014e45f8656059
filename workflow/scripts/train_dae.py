#!/usr/bin/env python3
"""Train the denoising autoencoder on parallel (noisy, clean) features; resume if checkpoints exist.

    python workflow/scripts/train_dae.py data/fsdd/mfcc/train_all_noisy data/fsdd/mfcc/train_all \
        data/fsdd/mfcc/dev_all_noisy data/fsdd/mfcc/dev_all exp/fsdd/dae \
        --model '{"hidden": 128, "layers": 2}' --layers 2 --train '{"max_epochs": 10, "seed": 1}' --cmvn speaker

    # the noisy inputs mixed as batches are made, from the clean sets' audio (their Kaldi data dirs):
    python workflow/scripts/train_dae.py data/fsdd/train_all data/fsdd/mfcc/train_all \
        data/fsdd/dev_all data/fsdd/mfcc/dev_all exp/fsdd/dae \
        --onthefly '{"noise_dirs": ["../shared/data/noise"], "snrs": [0, 5, 10, 20]}'

The noisy and clean directories hold the same utterance ids (mix_noise.py keeps them). The
input is normalized like the acoustic model's (--cmvn; the noisy set's own speaker statistics
with 'speaker'), the target by the clean set's. With --onthefly (speechrecipe.onthefly.MixedPairs)
each training utterance is mixed with a noise file and SNR drawn from (seed, epoch, utterance), and
the dev set with one fixed draw; the noisy input is normalized with the clean set's statistics. Training is the same loop as the acoustic
model's (speechrecipe.trainer, task speechrecipe.dae_task). Writes epoch-N.pt, history.tsv and
final.pt (kind 'dae'), whose encoder `am.init: dae` copies into the acoustic model.
"""

import argparse
import logging
from pathlib import Path

import torch

from speechrecipe import distributed
from speechrecipe.archive import ArchiveError
from speechrecipe.audio_sources import AudioSourceError, files_of, untranscribed_audio
from speechrecipe.cli import add_section, fail, fail_on_damaged_features, setup_logging
from speechrecipe.cmvn import global_stats, stats_to_mean_std
from speechrecipe.config import (
    CMVN_MODES,
    AMConfig,
    DAEConfig,
    DAETrainConfig,
    FeatureConfig,
    ModelConfig,
    OnTheFlyConfig,
    run_hash,
)
from speechrecipe.dae_task import DAETask
from speechrecipe.dataset import FeatureSet, PairedSet
from speechrecipe.model.dae import DenoisingAutoencoder
from speechrecipe.model.network import sized_for_data
from speechrecipe.noise import NoiseError
from speechrecipe.onthefly import AudioPairs, MixedPairs, OnTheFly, PairsUnion, audio_table
from speechrecipe.trainer import train

log = logging.getLogger("train_dae")

DEFAULTS = DAEConfig()


def training_pairs(args, noisy_dir: str, clean_dir: str, min_frames: int, mean_std) -> PairedSet | MixedPairs:
    """The (noisy, clean) pairs of one set: the noisy copy's features, or with --onthefly the clean set's
    audio (Kaldi data dir ``noisy_dir``) mixed with noise as batches are made."""
    clean = FeatureSet(clean_dir, args.cmvn, None, mean_std, min_frames, in_memory=args.in_memory)
    if not args.onthefly.noise_dirs:
        if not (Path(noisy_dir) / "feats.scp").is_file():
            fail(
                f"{noisy_dir} has no feats.scp: give the noisy copy's feature directory, or mix the noise as batches "
                "are made (--onthefly, dae.onthefly) from the clean set's Kaldi data directory"
            )
        noisy = FeatureSet(noisy_dir, args.cmvn, None, mean_std, min_frames, in_memory=args.in_memory)
        return PairedSet(noisy, clean)
    if args.onthefly.speed_perturb:
        fail("dae.onthefly: no speed_perturb for the DAE: its target is the clean features of the same audio")
    try:
        mixing = OnTheFly(args.onthefly, audio_table(noisy_dir, clean.utts), args.features, args.train.seed)
        return MixedPairs(clean, mixing)
    except (NoiseError, ValueError, OSError) as e:
        fail(f"dae.onthefly ({noisy_dir}): {e}")


def untranscribed_pairs(args, min_frames: int, mean_std) -> AudioPairs:
    """The pairs of --extra-audio, less the recordings of --exclude-audio's sets."""
    try:
        items, left_out = untranscribed_audio(args.extra_audio, files_of(args.exclude_audio))
        mixing = OnTheFly(
            args.onthefly, {i.utt: (i.entry, i.start, i.end) for i in items}, args.features, args.train.seed
        )
        pairs = AudioPairs(items, mixing, args.cmvn, mean_std, min_frames)
    except (AudioSourceError, NoiseError, OSError) as e:
        fail(str(e))
    if not len(pairs):
        fail(f"dae.extra_audio: no usable recording in {', '.join(map(str, args.extra_audio))} ({left_out} left out)")
    log.info(
        "untranscribed audio (dae.extra_audio): %d recordings, %.2f hours; %d left out as recordings of the "
        "experiment's own sets, %d shorter than the model's minimum",
        len(pairs),
        pairs.lengths.sum() * args.features.frame_shift_ms / 3.6e6,
        left_out,
        pairs.dropped_short,
    )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "noisy_train_dir",
        help="the noisy copy's features; with --onthefly the Kaldi data dir of clean_train_dir's audio",
    )
    parser.add_argument("clean_train_dir")
    parser.add_argument("noisy_dev_dir", help="as noisy_train_dir, for the dev set")
    parser.add_argument("clean_dev_dir")
    parser.add_argument("exp_dir")
    add_section(parser, "--model", ModelConfig, "am.model", ModelConfig(), "the acoustic model's config")
    parser.add_argument("--layers", type=int, default=DEFAULTS.layers, help="LSTM layers of the DAE encoder")
    parser.add_argument(
        "--layerwise",
        action="store_true",
        help="greedy layer-wise pretraining: a 1-layer DAE first, then each deeper one on top of the last, the "
        "layers below kept fixed (stages under EXP_DIR/layerK; the last writes EXP_DIR/final.pt)",
    )
    parser.add_argument(
        "--size-from",
        default="",
        metavar="DIR",
        help='where --model\'s "auto" sizes take the training hours from (default: CLEAN_TRAIN_DIR; the recipe '
        "gives what train_am.py gets, so that the encoder fits the acoustic model)",
    )
    add_section(parser, "--train", DAETrainConfig, "dae.train", DEFAULTS.train, "DAE training config")
    add_section(
        parser,
        "--onthefly",
        OnTheFlyConfig,
        "dae.onthefly",
        OnTheFlyConfig(),
        "noise mixed into the clean sets' audio as batches are made (noise_dirs, snrs, noise_probability); "
        "off while noise_dirs is empty",
    )
    add_section(
        parser, "--features", FeatureConfig, "features", FeatureConfig(), "feature config, stored with the model"
    )
    parser.add_argument(
        "--extra-audio",
        nargs="*",
        default=[],
        metavar="SOURCE",
        help="untranscribed audio the DAE also learns from, mixed like --onthefly (which it needs): Kaldi data "
        "dirs, folders, files or glob patterns (speechrecipe.audio_sources)",
    )
    parser.add_argument(
        "--exclude-audio",
        nargs="*",
        default=[],
        metavar="DATA_DIR",
        help="Kaldi data dirs whose recordings --extra-audio leaves out (the experiment's training, dev and eval sets)",
    )
    parser.add_argument("--cmvn", default=AMConfig().cmvn, choices=CMVN_MODES)
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads)
    parser.add_argument("--use-gpu", default=str(DEFAULTS.use_gpu), choices=["auto", "true", "false"])
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
    setup_logging()
    if args.extra_audio and not args.onthefly.noise_dirs:
        fail("dae.extra_audio is mixed with noise as batches are made: it needs dae.onthefly (--onthefly)")
    torch.set_num_threads(args.threads)
    config = args.train
    stats = global_stats(args.clean_train_dir)
    mean_std = stats_to_mean_std(stats)
    torch.manual_seed(config.seed)
    try:
        am_config = sized_for_data(args.model, args.size_from or args.clean_train_dir, args.features.frame_shift_ms)
        model = DenoisingAutoencoder(am_config.replace(input_dim=len(mean_std[0])), args.layers)
    except ValueError as e:
        fail(f"dae.layers: {e}")
    try:
        train_pairs, dev_pairs = (
            training_pairs(args, noisy, clean, model.min_input_frames(), mean_std)
            for noisy, clean in ((args.noisy_train_dir, args.clean_train_dir), (args.noisy_dev_dir, args.clean_dev_dir))
        )
    except ArchiveError as e:
        fail_on_damaged_features(e)
    if args.extra_audio:
        train_pairs = PairsUnion([train_pairs, untranscribed_pairs(args, model.min_input_frames(), mean_std)])
    features = args.features.to_dict()
    # The mixing is part of what is trained; without it the identity stays as it was, so runs resume.
    mixing = {"onthefly": args.onthefly.to_dict()} if args.onthefly.noise_dirs else {}
    if args.extra_audio:
        mixing["extra_audio"] = [str(a) for a in args.extra_audio]
    run = run_hash(
        config,
        model=model.config.to_dict(),
        cmvn=args.cmvn,
        features=features,
        train_dirs=[args.noisy_train_dir, args.clean_train_dir],
        **mixing,
    )
    extra = {"cmvn": {"mode": args.cmvn, "global_stats": torch.from_numpy(stats)}, "feature_config": features}
    device = distributed.pick_device(args.use_gpu)
    log.info("device: %s", device)
    stages = range(1, args.layers + 1) if args.layerwise else [args.layers]
    below = None
    for layers in stages:
        # Greedy layer-wise pretraining: stage k trains a k-layer DAE whose lower k-1 layers (and front end)
        # come from stage k-1 and stay fixed; the last stage writes final.pt where the recipe expects it.
        if layers != args.layers:
            log.info("layer-wise pretraining: stage %d of %d", layers, args.layers)
        if layers != args.layers:
            torch.manual_seed(config.seed + layers)
        stage = model if layers == args.layers else DenoisingAutoencoder(model.config, layers)
        frozen = copy_lower_layers(below, stage) if below is not None else []
        stage_run = run if not args.layerwise else run_hash(config, whole=run, layerwise_stage=layers)
        final = train(
            DAETask(stage, train_pairs, dev_pairs),
            args.exp_dir if layers == args.layers else Path(args.exp_dir) / f"layer{layers}",
            config,
            stage_run,
            extra,
            device,
            progress=not args.no_progress,
            frozen=frozen,
            freeze_steps=FOREVER if frozen else 0,
            loader_workers=args.loader_workers,
        )
        below = final["model"]


# Steps for which layer-wise pretraining keeps the layers below the new one fixed: the whole stage.
FOREVER = 1 << 62


def copy_lower_layers(state: dict, model: DenoisingAutoencoder) -> list[str]:
    """Copy the encoder tensors of a shallower DAE's ``state`` into ``model`` (same names, same shapes: its
    front end and lower LSTM layers); returns the parameter names copied, which the stage keeps fixed."""
    own = model.state_dict()
    copied = [name for name, tensor in state.items() if name.startswith("encoder.") and own[name].shape == tensor.shape]
    model.load_state_dict({**own, **{name: state[name] for name in copied}})
    parameters = {name for name, _ in model.named_parameters()}
    return [name for name in copied if name in parameters]


if __name__ == "__main__":
    main()
