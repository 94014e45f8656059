"""Helpers of the fault suite: the tiny recipe run through Snakemake, killed and compared.

Killing is done the way it happens in life: ``kill -9`` of the Snakemake process group
(Snakemake and every job it started: the machine went down, or Ctrl-C was not enough),
or of one job's processes only (its node died; Snakemake lives on and records the failure).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import torch
import yaml

from conftest import TINY_CORPUS, snakemake_on

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TAG = "tiny"
CORPUS = "synth_digits"

# The tiniest recipe whose stages last long enough to be killed in the middle: 2 training
# speakers of 8 synthesized utterances, 3 feature sets in 2 jobs each, a 2x64 BiLSTM for
# 10 epochs of 6 batches (~0.1 s each; the kill lands between epoch 1 and the end).
TINY = {
    "tag": TAG,
    "prepare": TINY_CORPUS,
    "features": {"nj": 2, "speed_perturb": []},  # no speed copies: the generic config's would triple the work
    "tokens": {"vocab_size": 20},
    "am": {
        "model": {"hidden": 64, "layers": 2},
        "train": {"max_epochs": 10, "min_steps": 0, "check_every_steps": 0, "batch_frames": 400, "warmup_steps": 5},
        "threads": 1,
    },
    "decode": {"beam_size": 2},
}


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command a user runs (the workflow profile profiles/default applies: rerun-incomplete)."""
    # The arguments go before --configfile, which would take a target for another config file.
    return [
        *snakemake_on(workdir),
        "--cores",
        "2",
        *args,
        "--configfile",
        str(workdir / "config.yaml"),
    ]


def write_config(workdir: Path, config: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed in {workdir}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def start(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake in a process group of its own (its jobs inherit it), its output to first-run.log."""
    with open(workdir / "first-run.log", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            snakemake_command(workdir, *args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 600) -> None:
    """Poll (every 5 ms) until ``condition()``; fail if the run ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            log = Path(proc.args[proc.args.index("--directory") + 1]) / "first-run.log"
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started (one process group), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def session_processes(session: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every live process of a session (the group started by :func:`start`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            found.append((int(entry.name), [a.decode(errors="replace") for a in argv if a]))
    return found


def kill_job(proc: subprocess.Popen, script: str, timeout: float = 10) -> list[int]:
    """SIGKILL the Python process(es) of one stage script started by this run; Snakemake itself lives on.
    Waits (up to ``timeout``) for the shell that opened the job's log to have started the interpreter."""
    deadline = time.monotonic() + timeout
    killed = []
    while not killed and time.monotonic() < deadline:
        for pid, argv in session_processes(proc.pid):
            # The script as an argument of its own: the interpreter running it, not the shell around it.
            if any(a.endswith(script) for a in argv[1:]) and "python" in Path(argv[0]).name:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.005)
    return killed


def rerun(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    """Run the same command again, as `make run` does: speechrecipe.cli.lock first (after Snakemake itself was
    SIGKILLed its lock is stale, and that removes it). Returns the run and whether a stale lock was removed."""
    recovery = subprocess.run(
        [sys.executable, "-m", "speechrecipe.cli.lock", *snakemake_command(workdir, *args)[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    locked = "Removing a stale Snakemake lock" in recovery.stderr
    again = snakemake(workdir, *args, check=False)
    if again.returncode != 0:
        raise AssertionError(f"the re-run failed:\n{again.stdout[-3000:]}\n{again.stderr[-5000:]}")
    return again, locked


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a finished run (its .snakemake metadata included, file times kept): paths in it are relative."""
    shutil.copytree(source, target, symlinks=True)
    return target


def keep_only(workdir: Path, *kept: str) -> None:
    """Delete every output of the experiment but ``kept`` (names under exp/<tag>/), as if the run had not yet
    got past them. (Snakemake does not re-make a deleted intermediate file while what it was used for exists.)"""
    for entry in exp(workdir).iterdir():
        if entry.name not in kept:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def exp(workdir: Path) -> Path:
    return workdir / "exp" / TAG


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def load_scp(workdir: Path, scp: Path) -> dict[str, np.ndarray]:
    """The matrices of an scp written by a run in ``workdir`` (its archive paths are relative to it)."""
    matrices = {}
    for line in scp.read_text().splitlines():
        utt, entry = line.split(" ", 1)
        matrices[utt] = np.asarray(kaldiio.load_mat(entry if entry.startswith("/") else str(workdir / entry)))
    return matrices


def features(workdir: Path, name: str) -> dict[str, np.ndarray]:
    return load_scp(workdir, workdir / f"data/{CORPUS}/fbank/{name}/feats.scp")


def assert_same_outcome(workdir: Path, reference: Path, models=("am/final.pt",)) -> None:
    """Same results.tsv (hence WER) and bit-identical model weights as the reference run."""
    assert (exp(workdir) / "results.tsv").read_text() == (exp(reference) / "results.tsv").read_text()
    for model in models:
        ours, theirs = weights(exp(workdir) / model), weights(exp(reference) / model)
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), f"{model}: {name} differs from the uninterrupted run"


def assert_same_features(workdir: Path, reference: Path, sets=("train", "dev", "test")) -> None:
    for name in sets:
        ours, theirs = features(workdir, name), features(reference, name)
        assert ours.keys() == theirs.keys(), name
        for utt in ours:
            np.testing.assert_array_equal(ours[utt], theirs[utt], err_msg=f"{name}/{utt}")


def temporaries(folder: Path) -> list[Path]:
    """Files named like fileio.atomic_path's temporaries (.<name>.<random>.tmp[suffix])."""
    return [p for p in folder.rglob(".*.tmp*") if ".snakemake" not in p.parts]


def rules_of_workflow() -> str:
    return "\n".join(p.read_text() for p in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))])


def has_rule(name: str) -> bool:
    return re.search(rf"^rule {re.escape(name)}:", rules_of_workflow(), flags=re.MULTILINE) is not None


def shell_commands(dry_run_output: str) -> list[str]:
    """The shell commands ``snakemake -n -p`` prints (one per line after 'Shell command:' or alone)."""
    commands, lines = [], dry_run_output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Shell command:"):
            rest = line[len("Shell command:") :].strip()
            commands.append(rest or (lines[i + 1].strip() if i + 1 < len(lines) else ""))
    return commands


def quoted_everywhere(commands: list[str], value: str) -> tuple[bool, str]:
    """Whether ``value`` reaches the commands only as (part of) one shell word.

    Quoted (``shlex.quote``), the raw text holds an escaped form and the words the shell makes of it
    hold the value; unquoted, the raw text holds the value and the shell splits it at its space and
    eats its quote, so the words hold it fewer times than the text does (or not at all).
    """
    seen = False
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            words = None
        in_words = sum(w.count(value) for w in words) if words is not None else 0
        if value not in command and not in_words:
            continue
        seen = True
        if words is None or in_words < max(1, command.count(value)):
            return False, command
    return seen, "" if seen else "the value reaches no shell command"
