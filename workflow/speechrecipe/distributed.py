"""Data-parallel training: launching the processes (torchrun, SLURM) and joining their process group.

A training script with ``num_gpus`` > 1 or ``num_nodes`` > 1 re-executes itself under torchrun
(:func:`launch`): ``num_gpus`` processes per node, each on its own GPU (NCCL) or, without CUDA,
on the CPU (gloo). On several nodes it must run inside a SLURM allocation: it starts one torchrun
per node with srun, and the rendezvous (c10d) is taken from the SLURM environment: the first host
of the job's node list, a port derived from the job id, the job id as the rendezvous id. What the
processes then do together is :mod:`speechrecipe.trainer`'s business.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """The processes cannot be started as asked (too few nodes or GPUs, no SLURM job)."""


def rank_and_size() -> tuple[int, int]:
    """(rank, world size) of this process in an initialized ``torch.distributed`` group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def environment_rank_and_size() -> tuple[int, int]:
    """(rank, world size) torchrun gave this process, before the group is joined; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def torchrun_command(
    script: str,
    script_args: list[str],
    num_gpus: int,
    num_nodes: int,
    threads: int,
    use_gpu: str = "auto",
    env: dict | None = None,
) -> list[str]:
    """The command that runs ``script`` as ``num_gpus`` processes on each of ``num_nodes`` nodes.

    One node: ``torchrun --standalone`` (a free local port). Several: ``srun`` starts one torchrun
    per node of the SLURM job, meeting at a c10d rendezvous on the job's first host.
    """
    env = os.environ if env is None else env
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={num_gpus}"]
    script_command = [os.path.abspath(script), *script_args]
    if num_nodes == 1:
        return [*torchrun, "--standalone", "--nnodes=1", *script_command]
    job = env.get("SLURM_JOB_ID")
    if not job:
        raise LaunchError(
            f"--num-nodes {num_nodes} needs a SLURM job of that many nodes (no SLURM_JOB_ID here): "
            "run it with --workflow-profile profiles/slurm, or set am.num_nodes: 1"
        )
    hosts = slurm_hosts(env)
    if len(hosts) < num_nodes:
        raise LaunchError(f"--num-nodes {num_nodes}, but SLURM job {job} has {len(hosts)} node(s): {' '.join(hosts)}")
    port = 20000 + int("".join(c for c in job if c.isdigit()) or 0) % 20000
    srun = [
        "srun",
        f"--nodes={num_nodes}",
        f"--ntasks={num_nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={threads}",
        "--kill-on-bad-exit=1",
    ]
    if use_gpu != "false" and env.get("CUDA_VISIBLE_DEVICES"):
        srun.append(f"--gres=gpu:{num_gpus}")
    return [
        *srun,
        *torchrun,
        f"--nnodes={num_nodes}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={hosts[0]}:{port}",
        f"--rdzv-id=speechrecipe-{job}",
        *script_command,
    ]


def slurm_hosts(env) -> list[str]:
    """The host names of the SLURM job's nodes, first one first (SLURM_JOB_NODELIST, else asked of squeue)."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:  # snakemake's SLURM job step keeps only SLURM_JOB_ID of the job's variables
        nodelist = subprocess.run(
            ["squeue", "-h", "-j", env["SLURM_JOB_ID"], "-o", "%N"], check=True, capture_output=True, text=True
        ).stdout.strip()
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True)
    return out.stdout.split()


def launch(
    script: str, script_args: list[str], num_gpus: int, num_nodes: int, threads: int, use_gpu: str = "auto"
) -> None:
    """Replace this process by torchrun running ``script`` (so that a signal to the job reaches it, and
    through it the workers). Does not return."""
    command = torchrun_command(script, script_args, num_gpus, num_nodes, threads, use_gpu)
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads // num_gpus))
    log.info("%d process(es) on each of %d node(s): %s", num_gpus, num_nodes, shlex.join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


def join(device: torch.device) -> torch.device:
    """Join the process group torchrun set up; this rank's device: its own GPU (NCCL) or the CPU (gloo)."""
    _die_with_parent()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise LaunchError(
                f"{os.environ.get('LOCAL_WORLD_SIZE')} processes on this node, but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible: lower am.num_gpus to the "
                "GPUs of a node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_rank0(value):
    """``value`` as rank 0 has it, on every rank (a picklable object)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sums(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over the ranks (float64)."""
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def pick_device(use_gpu: bool | str = "auto") -> torch.device:
    """CUDA when it is visible and wanted (use_gpu true or auto), else the CPU; false never asks CUDA."""
    if use_gpu in (False, "false"):
        return torch.device("cpu")
    if use_gpu in (True, "true", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if use_gpu in (True, "true"):
        log.warning("use_gpu is on but no CUDA device is visible: training on the CPU")
    return torch.device("cpu")


def _die_with_parent() -> None:
    """A worker ends when its torchrun does, even when torchrun is SIGKILLed (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
