# Paths and helpers shared by every stage. Nothing here imports torch, so that
# `snakemake -n` answers in a second.
import json
import os
import shlex
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
