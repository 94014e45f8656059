#!/usr/bin/env python3
"""Train the LSTM-CTC acoustic model; resume from the newest checkpoint if one exists.

    python workflow/scripts/train_am.py data/fsdd/fbank/train data/fsdd/fbank/dev exp/fsdd/tokens/sp.model exp/fsdd/am \
        --model '{"hidden": 256, "layers": 3}' --train '{"max_epochs": 30, "seed": 1}' --cmvn speaker

Writes exp/.../am/epoch-N.pt after every epoch, history.tsv, and final.pt: the
average of the best epochs with everything decoding needs (tokenizer, CMVN,
feature config), so final.pt alone is a usable model.

Several processes (DistributedDataParallel, see speechrecipe.training): with --num-gpus G > 1
or --num-nodes N > 1 this script re-executes itself under torchrun, G processes per node, each
on its own GPU (NCCL) or, without CUDA, on the CPU (gloo):

    python workflow/scripts/train_am.py ... --num-gpus 2                 # one node: torchrun --standalone
    python workflow/scripts/train_am.py ... --num-gpus 4 --num-nodes 2   # inside a SLURM job of 2 nodes

On several nodes it must run inside a SLURM allocation: it starts one torchrun per node with
srun, and the rendezvous (c10d) is taken from the SLURM environment: the first host of the job's
node list, a port derived from the job id, the job id as the rendezvous id. Only rank 0 logs and
writes files; re-running resumes like a single process.
"""

import argparse
import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import torch

from speechrecipe import checkpoint
from speechrecipe.cli import fail, json_or_file, setup_logging
from speechrecipe.dae import initialize_from_dae
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
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads on each node, shared by its --num-gpus processes")
    parser.add_argument("--use-gpu", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--num-gpus", type=int, default=1,
                        help="training processes per node: one per GPU, or gloo processes on the CPU without CUDA")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (several only inside a SLURM job)")
    parser.add_argument("--log-every", type=int, default=0, metavar="STEPS",
                        help="log the loss every STEPS steps (0: per epoch only)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.num_gpus < 1 or args.num_nodes < 1:
        parser.error("--num-gpus and --num-nodes must be at least 1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                            format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s")
    setup_logging()
    if (args.num_gpus > 1 or args.num_nodes > 1) and "TORCHELASTIC_RUN_ID" not in os.environ:
        launch(args)  # re-executes this script under torchrun: does not return
    logging.info("job environment: SLURM_JOB_ID=%s CUDA_VISIBLE_DEVICES=%s host=%s",
                 os.environ.get("SLURM_JOB_ID", "-"), os.environ.get("CUDA_VISIBLE_DEVICES", "-"), os.uname().nodename)
    threads = max(1, args.threads // args.num_gpus) if world > 1 else args.threads
    torch.set_num_threads(threads)
    train_config = TrainConfig.from_dict(args.train)
    tokenizer = Tokenizer(args.tokenizer)

    stats = global_stats(args.train_dir)
    mean, std = stats_to_mean_std(stats)
    model_config = ModelConfig.from_dict({**args.model, "input_dim": len(mean), "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(train_config.seed)
    model = CTCModel(model_config)
    logging.info("model: %s, %.2f M parameters", model_config, sum(p.numel() for p in model.parameters()) / 1e6)
    frozen = initialize(model, tokenizer, args.init, args.features) if args.init != "random" else []

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
              "train": train_config.hashed()}
    extra = {"tokenizer": tokenizer.model_bytes, "cmvn": {"mode": args.cmvn, "global_stats": torch.from_numpy(stats)},
             "feature_config": args.features}
    # use_gpu false never asks CUDA anything
    device = torch.device("cpu") if args.use_gpu == "false" else pick_device(args.use_gpu == "true" or "auto")
    if world > 1:
        device = init_distributed(device)
    logging.info("device: %s", device)
    train(model, train_set, dev_set, args.exp_dir, train_config, checkpoint.config_hash(hashed), extra, device,
          progress=not args.no_progress and rank == 0, log_every=args.log_every, frozen=frozen)
    if world > 1:
        torch.distributed.destroy_process_group()


def torchrun_command(args, script_args: list[str], env: dict | None = None) -> list[str]:
    """The command that runs this script as ``args.num_gpus`` processes on each of ``args.num_nodes`` nodes.

    One node: ``torchrun --standalone`` (a free local port). Several: ``srun`` starts one torchrun
    per node of the SLURM job, meeting at a c10d rendezvous on the job's first host.
    """
    env = os.environ if env is None else env
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.num_gpus}"]
    script = [os.path.abspath(__file__), *script_args]
    if args.num_nodes == 1:
        return [*torchrun, "--standalone", "--nnodes=1", *script]
    job = env.get("SLURM_JOB_ID")
    if not job:
        fail(f"--num-nodes {args.num_nodes} needs a SLURM job of that many nodes (no SLURM_JOB_ID here): "
             "run it with --workflow-profile profiles/slurm, or set am.num_nodes: 1")
    hosts = slurm_hosts(env)
    if len(hosts) < args.num_nodes:
        fail(f"--num-nodes {args.num_nodes}, but SLURM job {job} has {len(hosts)} node(s): {' '.join(hosts)}")
    port = 20000 + int("".join(c for c in job if c.isdigit()) or 0) % 20000
    srun = ["srun", f"--nodes={args.num_nodes}", f"--ntasks={args.num_nodes}", "--ntasks-per-node=1",
            f"--cpus-per-task={args.threads}", "--kill-on-bad-exit=1"]
    if args.use_gpu != "false" and env.get("CUDA_VISIBLE_DEVICES"):
        srun.append(f"--gres=gpu:{args.num_gpus}")
    return [*srun, *torchrun, f"--nnodes={args.num_nodes}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={hosts[0]}:{port}", f"--rdzv-id=speechrecipe-{job}", *script]


def slurm_hosts(env) -> list[str]:
    """The host names of the SLURM job's nodes, first one first (SLURM_JOB_NODELIST, else asked of squeue)."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:  # snakemake's SLURM job step keeps only SLURM_JOB_ID of the job's variables
        nodelist = subprocess.run(["squeue", "-h", "-j", env["SLURM_JOB_ID"], "-o", "%N"], check=True,
                                  capture_output=True, text=True).stdout.strip()
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True)
    return out.stdout.split()


def launch(args) -> None:
    """Replace this process by torchrun (so that a signal to the job reaches it, and through it the workers)."""
    command = torchrun_command(args, sys.argv[1:])
    os.environ["OMP_NUM_THREADS"] = str(max(1, args.threads // args.num_gpus))
    logging.info("%d process(es) on each of %d node(s): %s", args.num_gpus, args.num_nodes, shlex.join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group torchrun set up; this rank's device: its own GPU (NCCL) or the CPU (gloo)."""
    _die_with_parent()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            fail(f"{os.environ.get('LOCAL_WORLD_SIZE')} processes on this node, but only {torch.cuda.device_count()} "
                 "CUDA device(s) are visible: lower am.num_gpus to the GPUs of a node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def _die_with_parent() -> None:
    """A worker ends when its torchrun does, even when torchrun is SIGKILLed (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def initialize(model: CTCModel, tokenizer: Tokenizer, init: str, features: dict) -> list[str]:
    """Copy pretrained weights into ``model``: a denoising autoencoder's encoder (its final.pt), or a trained
    acoustic model's weights (fine-tuning; output units mapped by token). Returns the names of the copied
    encoder tensors (what am.train.freeze_epochs freezes)."""
    pretrained = checkpoint.load_final(init)
    if pretrained.get("kind") == "dae":
        if pretrained.get("feature_config") != features:
            fail(f"am.init {init}: the DAE was trained on other features ({pretrained.get('feature_config')}, "
                 f"here {features}). Fix: re-run its training (snakemake does when the features change)")
        try:
            copied = initialize_from_dae(model, pretrained["model"])
        except ValueError as e:
            fail(f"am.init {init}: {e}")
        logging.info("initialized the front end and %d LSTM layer(s) from the DAE %s: %d tensors",
                     pretrained["model_config"]["layers"], init, len(copied))
        return copied
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
    return [name for name in report["copied"] if name.startswith("encoder.")]


if __name__ == "__main__":
    main()
