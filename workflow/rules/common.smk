# What every stage shares: the typed config, the paths of the experiment, the sets, and every helper
# function of the rule files (each rule file holds its rules only). Nothing here imports torch, so
# that `snakemake -n` answers in a second.
import json
import os
import re
import shlex
import subprocess
import sys

from snakemake.exceptions import WorkflowError

from speechrecipe.config import (
    ConfigError,
    RecipeConfig,
    noise_sources,
    noisy_sets,
    snr_name,
    training_noise_sources,
)
from speechrecipe.noise import NoiseError, noise_files

try:
    RECIPE = RecipeConfig.from_dict(config)  # the validated config, typed (speechrecipe.config)
except ConfigError as e:
    raise WorkflowError(str(e))

# Every job runs the recipe's own programs with the interpreter that runs Snakemake (the recipe's
# venv): `run_step NAME ARGS` is workflow/scripts/NAME.py, `run_local NAME ARGS` local/NAME.py.
# They are shell functions rather than variables in each command, so that the commands name no
# machine-specific path (a moved checkout does not re-run anything) and say what they run.


def _shell_word(path: str) -> str:
    """A path as one shell word of the prefix, braces doubled (the prefix goes through Snakemake's formatting)."""
    return shlex.quote(path).translate({ord("{"): "{{", ord("}"): "}}"})


_PYTHON = _shell_word(sys.executable)
_ROOT = _shell_word(os.path.relpath(workflow.basedir))  # --directory may put data/ and exp/ elsewhere
shell.prefix(  # bash, strict as Snakemake's default prefix; function bodies in ( ): the prefix is brace-formatted
    "set -euo pipefail; "
    f'run_step() ( s=$1; shift; exec {_PYTHON} {_ROOT}/workflow/scripts/"$s".py "$@" ); '
    f'run_local() ( s=$1; shift; exec {_PYTHON} {_ROOT}/local/"$s".py "$@" ); '
)

# --- paths -------------------------------------------------------------------------------------------------------
CORPUS = RECIPE.corpus
DATA = RECIPE.data_dir or f"data/{CORPUS}"  # Kaldi data directories, one per set
DATA_NAME = os.path.basename(os.path.normpath(DATA))  # names the data's log folders under exp/
FEATURE_TYPE = RECIPE.features.type
FEATS = f"{DATA}/{FEATURE_TYPE}"  # feature directories, one per set
FEATURE_LOGS = f"exp/make_{FEATURE_TYPE}/{DATA_NAME}"
PREPARE_LOGS = f"exp/prepare/{DATA_NAME}"
EXP = f"exp/{RECIPE.tag}"
KALDI_FILES = ["wav.scp", "text", "utt2spk", "spk2utt", "utt2dur"]
# What each stage makes, as the later stages ask for it.
TOKENIZER = f"{EXP}/tokens/sp.model"
AM_FINAL = f"{EXP}/am/final.pt"
AM_HISTORY = f"{EXP}/am/history.tsv"
DAE_FINAL = f"{EXP}/dae/final.pt"
DAE_HISTORY = f"{EXP}/dae/history.tsv"
LM_ARPA = f"{EXP}/lm/lm.arpa"
LM_WEIGHT = f"{EXP}/lm/best_weight"
PLOTS = f"{EXP}/plots"

# --- sets --------------------------------------------------------------------------------------------------------
TRAIN_SET, DEV_SET = RECIPE.train_set, RECIPE.dev_set
SPEED_PERTURB = list(RECIPE.features.speed_perturb)
# The acoustic model trains on the speed-perturbed copy of the training set when one is asked for.
TRAIN_FEATS = f"{TRAIN_SET}_sp" if SPEED_PERTURB else TRAIN_SET
NJ = RECIPE.features.nj
# What a feature vector is (stored with every model); nj and speed_perturb change no feature's value.
FEATURE_CONFIG = RECIPE.features.feature_config().to_dict()
# Every set local/<corpus>.py must write: training, dev and the corpus's own eval sets.
CORPUS_SETS = list(dict.fromkeys([TRAIN_SET, DEV_SET, *RECIPE.eval_sets]))
# Noisy copies (noise.smk), by name: what each is made from (speechrecipe.config.noisy_sets).
NOISY_SETS = noisy_sets(RECIPE, list(dict.fromkeys([*RECIPE.eval_sets, *RECIPE.test_sets])), f"{DATA}/noise_generated")
NOISY_TEST_SETS = [name for name, s in NOISY_SETS.items() if s.is_test]
EVAL_SETS = list(dict.fromkeys([*RECIPE.eval_sets, *RECIPE.test_sets, *NOISY_TEST_SETS]))
# The sets this experiment reads (features, decoding): the report counts their benchmark files only.
PLOT_SETS = list(dict.fromkeys([TRAIN_SET, TRAIN_FEATS, DEV_SET, *EVAL_SETS, *NOISY_SETS]))

# --- what is switched on -----------------------------------------------------------------------------------------
DAE_USED = RECIPE.dae_used
USE_LM = RECIPE.decode.use_lm
if USE_LM and RECIPE.decode.method != "beam":
    raise WorkflowError("decode.use_lm needs decode.method: beam (the LM scores the beam search's hypotheses)")
# The search settings (method, beam_size): what decoding without LM depends on.
DECODE_SEARCH = RECIPE.decode.search()
# am.init as train_am.py takes it: 'dae' is this experiment's denoising autoencoder (dae.smk).
AM_INIT = DAE_FINAL if RECIPE.am.init == "dae" else RECIPE.am.init
# Multi-condition training adds the noisy copy of train_set (noise.smk) to the training data.
AM_EXTRA_TRAIN = [*RECIPE.am.extra_train, *([f"{FEATS}/{TRAIN_SET}_noisy"] if RECIPE.am.multi_condition else [])]
# am.train.onthefly (speechrecipe.onthefly): speed and noise made from the training set's audio as
# batches are made, with generated:TYPE noise entries as the files make_noise writes.
ONTHEFLY = RECIPE.am.train.onthefly
if ONTHEFLY.speed_perturb and SPEED_PERTURB:
    raise WorkflowError(
        "features.speed_perturb and am.train.onthefly.speed_perturb both perturb the training set's speed: "
        "keep one (onthefly writes no copy; features.speed_perturb writes one per factor)"
    )
ONTHEFLY_NOISE = list(noise_sources(ONTHEFLY.noise_dirs, f"{DATA}/noise_generated"))
# The training config as the rule's params: keys added later are left out at their old behaviour, so
# that experiments which predate them are not re-run (speechrecipe.config.TrainConfig.params).
AM_TRAIN = RECIPE.am.train.replace(seed=RECIPE.seed, onthefly=ONTHEFLY.replace(noise_dirs=ONTHEFLY_NOISE)).params()
DAE_TRAIN = RECIPE.dae.train.replace(seed=RECIPE.seed).params()
# dae.onthefly: the DAE's noisy inputs mixed from the clean sets' audio as batches are made, with the
# noise and SNRs the noise stage's <train_set>_noisy copy would have (every utterance noisy).
DAE_NOISE = list(training_noise_sources(RECIPE, f"{DATA}/noise_generated"))
DAE_MIXING = {"noise_dirs": DAE_NOISE, "snrs": list(RECIPE.noise.train_snrs), "noise_probability": 1.0}
if RECIPE.dae.extra_audio and not RECIPE.dae.onthefly:
    raise WorkflowError("dae.extra_audio is mixed with noise as batches are made: set dae.onthefly: true as well")
# The DAE's dev error by SNR (dae.smk): with the training noise and each held-out test noise condition.
DAE_SNR_NOISE = {"train": DAE_NOISE}
for _name, _entries in RECIPE.noise.test_noise_dirs.items():
    if list(noise_sources(_entries, f"{DATA}/noise_generated")) != DAE_NOISE:  # the training noise is drawn already
        DAE_SNR_NOISE[_name] = list(noise_sources(_entries, f"{DATA}/noise_generated"))
DAE_SNR_SNRS = sorted({*RECIPE.noise.train_snrs, *RECIPE.noise.test_snrs})
DAE_PLOTS = [f"{PLOTS}/dae_loss_by_snr.png", f"{PLOTS}/dae_loss_by_snr.tsv"] if DAE_USED else []
# Whose recordings dae.extra_audio leaves out: every set of the experiment (training, dev, eval, test_sets).
DAE_EXCLUDED_SETS = list(dict.fromkeys([*CORPUS_SETS, *RECIPE.test_sets])) if RECIPE.dae.extra_audio else []


def as_json(value) -> str:
    """A config section as one canonical JSON string (stable, so params only change when it does)."""
    return json.dumps(value, sort_keys=True)


def quoted(values) -> str:
    return " ".join(shlex.quote(str(v)) for v in values)


def input_dir(name: str, up: int = 1):
    """A params function: the directory ``up`` levels above the job's input file ``name``."""
    return lambda wildcards, input: _up(input[name], up)


def output_dir(name: str | int = 0, up: int = 1):
    """A params function: the directory ``up`` levels above the job's output file ``name``."""
    return lambda wildcards, output: _up(output[name], up)


def _up(path: str, levels: int) -> str:
    for _ in range(levels):
        path = os.path.dirname(path)
    return path


# --- data preparation (data.smk) ---------------------------------------------------------------------------------


def prepare_options() -> str:
    """config 'prepare' (and corpus_dir, kaldi_dirs, seed) as options for local/<corpus>.py, shell-quoted."""
    options = []
    if RECIPE.corpus_dir and CORPUS != "kaldi":
        options += ["--corpus-dir", RECIPE.corpus_dir]
    if CORPUS == "kaldi":
        for name, path in RECIPE.kaldi_dirs.items():
            options += ["--set", f"{name}={path}"]
    for key, value in RECIPE.prepare.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            options.append(flag)
        elif value is False:
            options.append(f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            options += [flag, *map(str, value)]
        else:
            options += [flag, str(value)]
    if CORPUS in ("synth_digits", "fsdd") and "seed" not in RECIPE.prepare:
        options += ["--seed", str(RECIPE.seed)]
    return quoted(options)


# --- features (features.smk) -------------------------------------------------------------------------------------


def source_set(wildcards) -> str:
    """The data set a feature set is computed from: 'train_sp' comes from 'train'."""
    return TRAIN_SET if SPEED_PERTURB and wildcards.set == TRAIN_FEATS else wildcards.set


def validated_source(wildcards) -> str:
    return f"{DATA}/{source_set(wildcards)}/validation.txt"


def speed_factors(wildcards) -> str:
    return " ".join(str(f) for f in (SPEED_PERTURB if wildcards.set == TRAIN_FEATS and SPEED_PERTURB else [1.0]))


# --- noise (noise.smk) -------------------------------------------------------------------------------------------


def noise_inputs(sources) -> list[str]:
    """The noise files of a set's sources (generated ones are made by make_noise). Checked here, while
    the DAG is built, so that a missing, empty or unreadable noise folder stops the run before any job."""
    real = [s for s in sources if not s.startswith(f"{DATA}/noise_generated/")]
    try:
        files = [str(f) for f in noise_files(real)] if real else []
    except NoiseError as e:
        raise WorkflowError(f"config noise: {e}")
    return files + [s for s in sources if s not in real]


NOISE_FILES = {name: noise_inputs(s.sources) for name, s in NOISY_SETS.items()}
NOISY_SET_PATTERN = "|".join(map(re.escape, NOISY_SETS)) or "(?!)"
# What on-the-fly augmentation reads: the training set's audio (its validated data directory, first) and noise.
ONTHEFLY_INPUTS = [f"{DATA}/{TRAIN_SET}/validation.txt", *noise_inputs(ONTHEFLY_NOISE)] if ONTHEFLY.enabled else []


def dae_inputs() -> dict:
    """What the DAE's noisy side is read from: the noisy copies' features, or with dae.onthefly the clean
    sets' data directories (their audio) and the noise files."""
    if not RECIPE.dae.onthefly:
        return {"noisy": f"{FEATS}/{TRAIN_SET}_noisy/feats.scp", "dev_noisy": f"{FEATS}/{DEV_SET}_noisy/feats.scp"}
    return {
        "noisy": f"{DATA}/{TRAIN_SET}/validation.txt",
        "dev_noisy": f"{DATA}/{DEV_SET}/validation.txt",
        "noise": noise_inputs(DAE_NOISE),
        "excluded": [f"{DATA}/{name}/validation.txt" for name in DAE_EXCLUDED_SETS],
    }


def dae_extra_audio(wildcards, input) -> str:
    """train_dae.py's --extra-audio and --exclude-audio options ('' without dae.extra_audio)."""
    if not RECIPE.dae.extra_audio:
        return ""
    excluded = [os.path.dirname(path) for path in input.excluded]
    return quoted(["--extra-audio", *RECIPE.dae.extra_audio, "--exclude-audio", *excluded])


def onthefly_audio_dir(wildcards, input) -> str:
    """train_am.py's --audio-dir: the training set's data directory with on-the-fly augmentation, else ''."""
    return _up(input.onthefly[0], 1) if ONTHEFLY.enabled else ""


def noisy_base(wildcards) -> str:
    return f"{DATA}/{NOISY_SETS[wildcards.noisy].base}/validation.txt"


def babble_speech(wildcards) -> list[str]:
    """Babble is made of training utterances (never the test speakers')."""
    return [f"{DATA}/{TRAIN_SET}/validation.txt"] if wildcards.kind == "babble" else []


# --- training (dae.smk, am.smk) ----------------------------------------------------------------------------------
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


def training_resources(mem_mb, runtime: int, use_gpu, num_gpus: int = 1, num_nodes: int = 1) -> dict:
    """Resources of a training job: its memory (a number, or a function of its inputs, see training_mem_mb),
    runtime, and the GPUs unless use_gpu is false.

    One node: gpu=num_gpus (sbatch --gpus, or the local gpu limit). Several nodes: one SLURM task per
    node (tasks=num_nodes, nodes=num_nodes, run in the batch step, hence mpi) with gres=gpu:num_gpus
    on each (per node, which --gpus is not); train_am.py then starts torchrun on every node with srun.
    """
    resources = {"mem_mb": mem_mb, "runtime": runtime}
    gpus = use_gpu is not False
    if num_nodes > 1:
        resources.update(nodes=num_nodes, tasks=num_nodes, mpi="srun")
        if gpus:
            # tasks_per_gpu=0 keeps the SLURM plugin from adding --ntasks-per-gpu (it would take tasks).
            resources.update(gres=f"gpu:{num_gpus}", tasks_per_gpu=0)
    elif gpus:
        resources["gpu"] = num_gpus
    return resources


# Memory that grows with the data, in MB: what a training process holds per utterance of its index
# (ids, archive offsets, frame counts, token targets, in Python), and what gather_features holds per
# utterance id while it merges the jobs; with in_memory, the normalized features themselves.
INDEX_MB_PER_UTTERANCE = 0.0005
GATHER_MB_PER_UTTERANCE = 0.0025


def data_size(feat_dirs) -> tuple[int, int]:
    """(utterances, frames) of feature directories, from their utt2num_frames; (0, 0) before they exist
    (a dry run of a fresh experiment: the job's memory is then the configured one)."""
    utterances = frames = 0
    for feat_dir in feat_dirs:
        path = os.path.join(feat_dir, "utt2num_frames")
        if not os.path.exists(path):
            return 0, 0
        with open(path) as f:
            for line in f:
                utterances += 1
                frames += int(line.split()[1])
    return utterances, frames


def training_mem_mb(configured: int, in_memory: bool, processes: int = 1):
    """A resource function: the training job's memory, the configured mem_mb per process or, when the data
    needs more (a large corpus's index, or its features with in_memory), what the data needs."""

    def mem_mb(wildcards, input) -> int:
        dirs = [os.path.dirname(f) for f in input if f.endswith("feats.scp")]
        utterances, frames = data_size(dirs)
        data = INDEX_MB_PER_UTTERANCE * utterances
        if in_memory:
            data += 1.2 * frames * RECIPE.features.feature_config().dim * 4 / 1e6
        return int(max(configured, 1500 + data if utterances else 0)) * processes

    return mem_mb


def gather_mem_mb(wildcards, input) -> int:
    """gather_features holds a few strings per utterance id (every speed factor's copy) while it merges."""
    try:
        with open(input.validated) as f:
            utterances = int(dict(line.split("\t", 1) for line in f)["utterances"])
    except (OSError, KeyError, ValueError):
        utterances = 0
    copies = len(speed_factors(wildcards).split())
    return int(max(1500, 400 + GATHER_MB_PER_UTTERANCE * utterances * copies))


def am_init_inputs(wildcards) -> list[str]:
    """What the model starts from besides its config: nothing for 'random', the DAE's final.pt for
    'dae', else the pretrained model (another experiment, trained by its own snakemake run)."""
    if AM_INIT == "random":
        return []
    if AM_INIT.endswith(".pt") or os.path.exists(os.path.join(AM_INIT, "manifest.json")):
        return [AM_INIT]
    return [os.path.join(AM_INIT, "am", "final.pt")]


# --- decoding (decode.smk, lm.smk) -------------------------------------------------------------------------------


def decode_extra_inputs(wildcards) -> dict:
    """With decode.use_lm, the LM and its weight tuned on the dev set (lm.smk); with decode.enhance,
    the DAE; otherwise nothing (so turning them off never re-runs anything)."""
    inputs = {"lm": LM_ARPA, "lm_weight": LM_WEIGHT} if USE_LM else {}
    if RECIPE.decode.enhance:
        inputs["dae"] = DAE_FINAL
    return inputs


def decode_extra_options(wildcards, input) -> str:
    """decode.py's options for the LM and the DAE, when they are on."""
    options = []
    if USE_LM:
        options += [
            "--lm",
            input.lm,
            "--lm-weight-file",
            input.lm_weight,
            "--word-insertion-penalty",
            RECIPE.decode.lm.word_insertion_penalty,
        ]
    if RECIPE.decode.enhance:
        options += ["--enhance", input.dae]
    return quoted(options)


# --- report (report.smk) -----------------------------------------------------------------------------------------
# Rules with benchmark files that are not part of this run: on demand, or switched off in this config
# (a file an earlier config left behind would otherwise count).
PLOT_SKIP_RULES = (
    {"export_model"} | ({"train_dae"} if not DAE_USED else set()) | ({"lm_weight_sweep"} if not USE_LM else set())
)


def benchmark_patterns(wildcards) -> str:
    """RULE=PATTERN for each benchmarked rule (shell-quoted), by which make_plots.py finds this run's
    files. Asked for when the DAG is built, so every rule file is included by then."""
    return quoted(
        f"{rule.name}={rule.benchmark}"
        for rule in workflow.rules
        if rule.benchmark is not None and not callable(rule.benchmark) and rule.name not in PLOT_SKIP_RULES
    )


def plot_keep() -> str:
    """WILDCARD=V1,V2 for make_plots.py --keep: the benchmark files of this experiment's sets and jobs."""
    jobs = [str(j) for j in range(1, NJ + 1)]
    return quoted(
        f"{name}={','.join(values)}"
        for name, values in {"set": PLOT_SETS, "noisy": list(NOISY_SETS), "job": jobs}.items()
    )


def plot_report(name: str, caption: str, category: str, figure: str):
    return report(f"{PLOTS}/{name}", caption=f"../report/{caption}.rst", category=category, labels={"figure": figure})
