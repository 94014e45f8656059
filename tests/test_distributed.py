"""Data-parallel training (DistributedDataParallel under torchrun), on the CPU with the gloo backend.

Two processes with the same global batch must train like one: same per-step losses (up to
floating-point summation order), same checkpoints, rank 0 alone writing and logging, and resume.
"""

import re
import subprocess

import numpy as np
import pytest
import torch

from conftest import train_am_on
from speechrecipe import checkpoint
from speechrecipe.batching import bucket_batches, epoch_order, shard_batch
from speechrecipe.config import ModelConfig
from speechrecipe.distributed import LaunchError, torchrun_command
from speechrecipe.model import CTCModel, load_final

MODEL = {"hidden": 32, "layers": 2, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.0}
# Dropout off: each process draws its own masks. SpecAugment stays on (it is drawn for the global batch).
TRAIN = {
    "max_epochs": 2,
    "batch_frames": 1500,
    "lr": 0.003,
    "warmup_steps": 10,
    "average_best": 1,
    "seed": 3,
}


def train_am(fsdd_features, exp_dir, processes: int, **overrides) -> subprocess.CompletedProcess:
    cmd = [
        *train_am_on(fsdd_features, str(exp_dir), MODEL, {**TRAIN, **overrides}, "speaker"),
        "--threads",
        str(processes),
        "--num-gpus",
        str(processes),
        "--use-gpu",
        "false",
        "--log-every",
        "1",
        "--no-progress",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def step_losses(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"step \d+: loss (\S+)", log)]


@pytest.mark.parametrize("world", [2, 3, 4, 8])
def test_shards_cover_every_utterance_of_every_batch_exactly_once(world):
    rng = np.random.default_rng(world)
    lengths = rng.integers(20, 1500, 301).tolist()  # long ones make batches of 1 or 2
    batches = bucket_batches(lengths, max_frames=2500, max_batch=16)
    assert any(len(b) < world for b in batches)  # some batches smaller than the world
    seen = []
    for batch in epoch_order(batches, 1, 1):
        parts = [shard_batch(batch, rank, world) for rank in range(world)]
        assert sorted(i for p in parts for i in p) == sorted(batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        seen += [i for p in parts for i in p]
    assert sorted(seen) == list(range(len(lengths)))
    with pytest.raises(ValueError):
        shard_batch([1, 2], world, world)


@pytest.fixture(scope="module")
def runs(fsdd_features, tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    single = train_am(fsdd_features, base / "single", 1)
    double = train_am(fsdd_features, base / "double", 2)
    return base, single, double


def test_two_processes_give_the_losses_of_one_with_the_same_global_batch(runs):
    _, single, double = runs
    one, two = step_losses(single.stderr), step_losses(double.stderr)
    assert len(one) == len(two) >= 6
    np.testing.assert_allclose(two[:3], one[:3], rtol=1e-5)
    np.testing.assert_allclose(two, one, rtol=1e-3)
    assert "data-parallel training: 2 processes (gloo backend)" in double.stderr


def test_only_rank_0_writes_and_logs(runs):
    base, _, double = runs
    assert double.stderr.count("epoch 1: loss") == 1 and double.stderr.count("final.pt: average") == 1
    assert "[rank 1]" not in double.stderr
    rows = (base / "double/history.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == [1, 2]
    assert not list((base / "double").glob(".*.tmp*"))


def test_the_distributed_checkpoint_has_the_single_process_shapes_and_loads(runs, fsdd_features):
    base, _, _ = runs
    for name in ("epoch-2.pt", "final.pt"):
        one = checkpoint.load(base / "single" / name)["model"]
        two = checkpoint.load(base / "double" / name)["model"]
        assert {k: v.shape for k, v in one.items()} == {k: v.shape for k, v in two.items()}
        torch.testing.assert_close(two, one, rtol=1e-3, atol=1e-4)  # the same training, up to rounding
    final = load_final(base / "double" / "final.pt")
    model = CTCModel(ModelConfig.from_dict(final["model_config"]))
    model.load_state_dict(final["model"])
    epoch = checkpoint.load(base / "double" / "epoch-2.pt")
    assert set(epoch) >= {"model", "optimizer", "progress", "config_hash"}
    assert {"step", "epoch", "position", "history"} <= set(epoch["progress"])


def test_a_distributed_run_resumes_from_its_checkpoint(runs, fsdd_features):
    base, _, double = runs
    first = train_am(fsdd_features, base / "resumed", 2, max_epochs=1)
    assert "epoch 1: loss" in first.stderr and not (base / "resumed/epoch-2.pt").exists()
    second = train_am(fsdd_features, base / "resumed", 2)
    assert "resuming from" in second.stderr and "epoch-1.pt" in second.stderr
    assert "epoch 1: loss" not in second.stderr and second.stderr.count("epoch 2: loss") == 1
    np.testing.assert_allclose(
        step_losses(second.stderr), step_losses(double.stderr)[-len(step_losses(second.stderr)) :], rtol=1e-5
    )
    a = checkpoint.load(base / "double/final.pt")["model"]
    b = checkpoint.load(base / "resumed/final.pt")["model"]
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    # A single process continues a distributed run's checkpoints as well (the process count is not hashed).
    more = subprocess.run(
        [
            *train_am_on(fsdd_features, str(base / "resumed"), MODEL, {**TRAIN, "max_epochs": 3}, "speaker"),
            "--threads",
            "1",
            "--use-gpu",
            "false",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert more.returncode == 0 and "epoch-2.pt" in more.stderr and "epoch 3: loss" in more.stderr, more.stderr[-2000:]


def test_launch_commands_single_node_and_slurm_multi_node(monkeypatch):
    from speechrecipe import distributed

    command = torchrun_command("train.py", ["a", "b"], num_gpus=4, num_nodes=1, threads=8, env={})
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=4"]
    assert "--standalone" in command and command[-2:] == ["a", "b"] and command[-3].endswith("/train.py")

    # Several nodes: one torchrun per node through srun; the rendezvous on the job's first host.
    def fake_run(cmd, **kwargs):
        assert cmd[:3] == ["scontrol", "show", "hostnames"] and cmd[3] == "gpu[07-08]"
        return subprocess.CompletedProcess(cmd, 0, stdout="gpu07\ngpu08\n", stderr="")

    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    command = torchrun_command("train.py", ["a"], num_gpus=4, num_nodes=2, threads=8, env=env)
    assert command[0] == "srun" and "--nodes=2" in command and "--ntasks-per-node=1" in command
    assert "--gres=gpu:4" in command and "--nnodes=2" in command and "--nproc-per-node=4" in command
    assert "--rdzv-backend=c10d" in command and "--rdzv-id=speechrecipe-4242" in command
    assert f"--rdzv-endpoint=gpu07:{20000 + 4242}" in command
    with pytest.raises(LaunchError, match="needs a SLURM job"):  # several nodes outside SLURM: an error, not a hang
        torchrun_command("train.py", ["a"], num_gpus=4, num_nodes=2, threads=8, env={})
    env["SLURM_JOB_NODELIST"] = "gpu07"
    monkeypatch.setattr(
        distributed.subprocess,
        "run",
        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, stdout="gpu07\n", stderr=""),
    )
    with pytest.raises(LaunchError, match="has 1 node"):
        torchrun_command("train.py", ["a"], num_gpus=4, num_nodes=2, threads=8, env=env)
