# Paths and helpers shared by every stage. Nothing here imports torch, so that
# `snakemake -n` answers in a second.
import json
import os
import shlex
import subprocess
import sys

PYTHON = shlex.quote(sys.executable)  # the interpreter that runs snakemake (the recipe's venv)
# The recipe's own files, relative to the working directory (--directory may put data/ and exp/ elsewhere).
ROOT = shlex.quote(os.path.relpath(workflow.basedir))
CORPUS = config["corpus"]
DATA = config["data_dir"] or f"data/{CORPUS}"  # Kaldi data directories, one per set
DATA_NAME = os.path.basename(os.path.normpath(DATA))  # names the data's log folders under exp/
FEATS = f"{DATA}/{config['features']['type']}"  # feature directories, one per set
EXP = f"exp/{config['tag']}"

SPEED_PERTURB = [f for f in config["features"]["speed_perturb"]]
# The acoustic model trains on the speed-perturbed copy of the training set when one is asked for.
TRAIN_FEATS = config["train_set"] + ("_sp" if SPEED_PERTURB else "")
EVAL_SETS = list(dict.fromkeys([*config["eval_sets"], *config["test_sets"]]))
# Whether this experiment trains a denoising autoencoder (workflow/rules/dae.smk): its encoder starts
# the acoustic model (am.init: dae) or it enhances features before decoding (decode.enhance).
DAE_USED = config["am"]["init"] == "dae" or config["decode"]["enhance"]

# Noisy copies of data sets (workflow/rules/noise.smk), by name: what each is made from.
#   test copies <set>_<noise>_<snr>dB: every set of noise.sets x test noise condition x noise.test_snrs;
#   training copies <train_set>_noisy and <dev_set>_noisy: for multi-condition training and the DAE.
NOISE = config["noise"]
GENERATED_NOISE = ["generated:white", "generated:pink", "generated:babble"]


def noise_sources(entries: list) -> list:
    """Noise entries of config as paths: generated:TYPE becomes the file make_noise writes."""
    return [f"{DATA}/noise_generated/{e.split(':', 1)[1]}.wav" if e.startswith("generated:") else e for e in entries]


def snr_name(snr) -> str:
    return f"{snr:g}".replace("-", "m") + "dB"


NOISY_SETS = {}
for _base in NOISE["sets"] if NOISE["sets"] is not None else [s for s in EVAL_SETS if s != config["dev_set"]]:
    for _noise, _entries in (NOISE["test_noise_dirs"] or {"noise": NOISE["noise_dirs"] or GENERATED_NOISE}).items():
        for _snr in NOISE["test_snrs"]:
            NOISY_SETS[f"{_base}_{_noise}_{snr_name(_snr)}"] = {
                "base": _base, "noise": _noise, "snr": _snr, "snrs": [_snr], "sources": noise_sources(_entries)}
NOISY_TRAINING = config["am"]["multi_condition"] or DAE_USED
if NOISY_TRAINING:
    for _base in (config["train_set"], config["dev_set"]):
        NOISY_SETS[f"{_base}_noisy"] = {"base": _base, "noise": "train", "snr": None, "snrs": NOISE["train_snrs"],
                                        "sources": noise_sources(NOISE["noise_dirs"] or GENERATED_NOISE)}
NOISY_TEST_SETS = [name for name, s in NOISY_SETS.items() if s["snr"] is not None]
EVAL_SETS += NOISY_TEST_SETS

# Every set local/<corpus>.py must write: training, dev and the corpus's own eval sets.
CORPUS_SETS = list(dict.fromkeys([config["train_set"], config["dev_set"], *config["eval_sets"]]))


def as_json(value):
    """A config section as one canonical JSON string (stable, so params only change when it does)."""
    return json.dumps(value, sort_keys=True)


def prepare_options():
    """config['prepare'] as command-line options for local/<corpus>.py, each shell-quoted."""
    options = []
    if config.get("corpus_dir") and CORPUS != "kaldi":
        options += ["--corpus-dir", config["corpus_dir"]]
    if CORPUS == "kaldi":
        for name, path in config["kaldi_dirs"].items():
            options += ["--set", f"{name}={path}"]
    for key, value in config["prepare"].items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            options.append(flag)
        elif value is False:
            options.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            options += [flag, *map(str, value)]
        else:
            options += [flag, str(value)]
    if CORPUS in ("synth_digits", "fsdd") and "seed" not in config["prepare"]:
        options += ["--seed", str(config["seed"])]
    return " ".join(shlex.quote(o) for o in options)


# Resources. Every rule declares threads, mem_mb (MB) and runtime (minutes); the training rules
# also a GPU (training_resources). Locally, Snakemake schedules with them (--cores, and the gpu
# limit below); under SLURM (profiles/slurm) they become sbatch's --cpus-per-task, --mem, --time
# and --gpus. Sites adapt them with set-resources in a profile, never here.


def visible_gpus() -> int:
    """GPUs this machine shows to its jobs: nvidia-smi's list narrowed by CUDA_VISIBLE_DEVICES, 0 without
    a driver. Asked without importing torch (which would cost `snakemake -n` seconds, and touch CUDA)."""
    selected = os.environ.get("CUDA_VISIBLE_DEVICES")
    if selected is not None and selected.strip() in ("", "-1", "NoDevFiles"):
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    count = sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))
    if selected is not None:
        count = min(count, len([d for d in selected.split(",") if d.strip()]))
    return count


# A local run (no --jobs/--executor: Snakemake's own scheduler on this machine) gets the global resource
# gpu = the visible GPUs, unless --resources gpu=N says otherwise: a job's gpu is capped to it and the
# jobs running at once never need more than it, so two GPU jobs never share one GPU, and on a machine
# without GPUs the training jobs run (on the CPU) with gpu=0. Under SLURM (--jobs set by the profile)
# the cluster allocates GPUs per job and the submitting host's GPUs do not matter.
LOCAL_RUN = workflow.is_main_process and workflow.nodes is None
if LOCAL_RUN and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", visible_gpus())


def training_resources(section: dict) -> dict:
    """Resources of a training job from its config section (am; the DAE's takes the same keys):
    mem_mb per process times the processes of a node, runtime, and the GPUs unless use_gpu is false.

    One node: gpu=num_gpus (sbatch --gpus, or the local gpu limit). Several nodes: one SLURM task per
    node (tasks=num_nodes, nodes=num_nodes, run in the batch step, hence mpi) with gres=gpu:num_gpus
    on each (per node, which --gpus is not); train_am.py then starts torchrun on every node with srun.
    """
    num_gpus, num_nodes = section["num_gpus"], section["num_nodes"]
    resources = {"mem_mb": section["mem_mb"] * num_gpus, "runtime": section["runtime"]}
    use_gpu = section["use_gpu"] is not False
    if num_nodes > 1:
        resources.update(nodes=num_nodes, tasks=num_nodes, mpi="srun")
        if use_gpu:
            # tasks_per_gpu=0 keeps the SLURM plugin from adding --ntasks-per-gpu (it would take tasks).
            resources.update(gres=f"gpu:{num_gpus}", tasks_per_gpu=0)
    elif use_gpu:
        resources["gpu"] = num_gpus
    return resources
