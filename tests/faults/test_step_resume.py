"""Training killed at a random step (SIGKILL: a node that died, a SLURM time limit past its grace) resumes at
that step, not at the last epoch, and ends with the weights of a run that was never interrupted: in one
process, and in two gloo processes (DistributedDataParallel on the CPU)."""

import os
import random
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from conftest import train_am_on
from speechrecipe import checkpoint

MODEL = {"hidden": 32, "layers": 2, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.1}
# A resume point after every step, so that a kill anywhere loses at most the step in flight.
TRAIN = {
    "max_epochs": 3,
    "batch_frames": 1500,
    "lr": 0.003,
    "warmup_steps": 10,
    "average_best": 2,
    "seed": 3,
    "checkpoint_every_steps": 1,
}


def command(fsdd_features, exp_dir, processes: int) -> list[str]:
    options = ["--threads", str(processes), "--num-gpus", str(processes), "--use-gpu", "false", "--no-progress"]
    return [*train_am_on(fsdd_features, exp_dir, MODEL, TRAIN), *options]


def run(fsdd_features, exp_dir, processes: int) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command(fsdd_features, exp_dir, processes), capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_at_a_random_step(fsdd_features, exp_dir, processes: int, total_steps: int) -> int:
    """Start training, SIGKILL its whole process group once a random step's resume point exists; that step."""
    target = random.Random().randint(2, total_steps - 2)
    proc = subprocess.Popen(
        command(fsdd_features, exp_dir, processes),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not any(s >= target for s, _ in checkpoint.step_checkpoints(exp_dir)) and time.time() < deadline:
        assert proc.poll() is None, "training ended before the kill"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (exp_dir / "final.pt").exists(), f"training finished before step {target}: the kill came too late"
    return target


@pytest.fixture(scope="module")
def uninterrupted(fsdd_features, tmp_path_factory):
    """The reference runs, one process and two, never interrupted: (final weights, steps) by process count."""
    base = tmp_path_factory.mktemp("uninterrupted")
    runs = {}
    for processes in (1, 2):
        run(fsdd_features, base / str(processes), processes)
        final = checkpoint.load(base / str(processes) / "final.pt")
        runs[processes] = (final["model"], final["history"][-1]["step"])
    return runs


@pytest.mark.parametrize("processes", [1, 2])
def test_a_kill_at_a_random_step_resumes_there_with_the_same_final_weights(
    fsdd_features, tmp_path, uninterrupted, processes
):
    reference, total_steps = uninterrupted[processes]
    killed_at = kill_at_a_random_step(fsdd_features, tmp_path, processes, total_steps)
    again = run(fsdd_features, tmp_path, processes)
    resumed = int(re.search(r"resuming from \S+step-\d+\.pt \(epoch \d+, step (\d+)", again.stderr).group(1))
    assert killed_at <= resumed <= killed_at + 2, f"killed after step {killed_at}, resumed at step {resumed}"
    weights = checkpoint.load(tmp_path / "final.pt")["model"]
    for name, tensor in reference.items():
        torch.testing.assert_close(
            weights[name],
            tensor,
            rtol=0,
            atol=0,
            msg=f"{name} differs after a kill at step {killed_at} ({processes} process(es))",
        )


def test_a_run_resumed_with_another_number_of_processes_continues_at_its_step(fsdd_features, tmp_path, uninterrupted):
    """One process killed mid-epoch, resumed as two: the same batches from the same step on, to the same
    number of steps. (Not the same weights bit for bit: the gradient is summed in another order, and each rank
    draws its own dropout masks.)"""
    _, total_steps = uninterrupted[1]
    killed_at = kill_at_a_random_step(fsdd_features, tmp_path, 1, total_steps)
    again = run(fsdd_features, tmp_path, 2)
    assert "data-parallel training: 2 processes" in again.stderr and f"step {killed_at}" in again.stderr
    final = checkpoint.load(tmp_path / "final.pt")
    assert final["history"][-1]["step"] == total_steps
    losses = np.array([h["dev_loss"] for h in final["history"]])
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
