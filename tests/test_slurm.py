"""The tiny recipe end to end on a real SLURM (slurmctld + slurmd on this machine), through profiles/slurm.

tests/slurm/start_cluster.sh installs SLURM with apt-get when it is missing and starts a one-node
cluster with one fake GPU under a temporary directory; the daemons it started are stopped afterwards.
Needs root (CI runs as root); skipped, saying why, otherwise or when SLURM cannot be installed.
"""

import copy
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_recipe import TINY

from conftest import ROOT, snakemake_on

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

START = ROOT / "tests/slurm/start_cluster.sh"
STOP = ROOT / "tests/slurm/stop_cluster.sh"
# The tiny recipe, its training on the node's two (fake) GPUs: two DDP processes under torchrun, which
# fall back to the CPU (gloo). Little memory, so that any test machine's node can take the job.
SLURM_TINY = {**copy.deepcopy({k: v for k, v in TINY.items() if k != "test_sets"}), "tag": "tiny_slurm"}
SLURM_TINY["am"].update(num_gpus=2, mem_mb=1000, runtime=30)
# Status checks: squeue (no accounting database here: sacct would fail and snakemake would wait forever),
# first one 2 s after submission (MinJobAge=300 in the test cluster is well above 3 x 2 s).
STATUS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment (SLURM_CONF) of a running one-node SLURM cluster."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test needs root (to install and start slurmctld, slurmd and munged); CI runs it as root")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(START), str(state)], capture_output=True, text=True, timeout=900, check=False)
    try:
        if started.returncode != 0:
            if started.returncode == 3:  # apt-get failed, or the machine has a SLURM of its own
                pytest.skip(f"no SLURM test cluster on this machine: {started.stderr.strip()[-500:]}")
            raise AssertionError(f"the SLURM test cluster did not start:\n{started.stderr[-3000:]}")
        yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run([str(STOP), str(state)], capture_output=True, text=True, timeout=120, check=False)


def snakemake_slurm(workdir: Path, config: dict, env: dict, *args, timeout: int = 420):
    """snakemake --workflow-profile profiles/slurm in ``workdir``; never waits longer than ``timeout``."""
    override = workdir / "override.yaml"
    override.write_text(yaml.safe_dump(config))
    cmd = [
        *snakemake_on(workdir),
        "--workflow-profile",
        str(ROOT / "profiles/slurm"),
        "--configfile",
        str(override),
        *STATUS,
        *args,
    ]
    started = time.time()
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # snakemake cancels its SLURM jobs on SIGTERM
        output, _ = proc.communicate()
        raise AssertionError(f"snakemake under SLURM still running after {timeout} s:\n{output[-4000:]}")
    print(f"snakemake under SLURM: exit {proc.returncode} after {time.time() - started:.0f} s")
    return proc.returncode, output


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recipe_slurm")
    code, output = snakemake_slurm(workdir, SLURM_TINY, slurm)
    assert code == 0, f"snakemake under SLURM failed:\n{output[-5000:]}"
    return workdir, output


def test_the_recipe_runs_end_to_end_under_slurm(slurm_run):
    workdir, output = slurm_run
    exp = workdir / "exp/tiny_slurm"
    rows = (exp / "results.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["dev", "test"]
    # Every job went through sbatch (the localrules excepted), feature extraction as nj jobs per set.
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) >= 1 + 3 * 2 + 3 + 1 + 1 + 2, output[-3000:]
    # Each rule's log is under exp/, as in a local run.
    for log in (
        "exp/prepare/synth_digits/log/prepare.log",
        "exp/make_fbank/synth_digits/train/log/make_features.2.log",
        "exp/tiny_slurm/am/log/train.log",
        "exp/tiny_slurm/decode_test/log/decode.log",
    ):
        assert (workdir / log).stat().st_size > 0, log


def test_training_ran_in_a_slurm_job_with_its_gpus_allocated(slurm_run, slurm):
    workdir, _ = slurm_run
    log = (workdir / "exp/tiny_slurm/am/log/train.log").read_text()
    found = re.search(r"SLURM_JOB_ID=(\d+) CUDA_VISIBLE_DEVICES=(\S+)", log)
    assert found, log[-2000:]
    job, devices = found.groups()
    assert devices == "0,1", "the training job did not get its two GPUs"
    # The GPUs are fake (/dev/null, /dev/zero): CUDA finds no device, and training falls back to the CPU,
    # in two data-parallel processes (rank 0 alone logs).
    assert "device: cpu" in log
    assert "2 process(es) on each of 1 node(s)" in log and "data-parallel training: 2 processes (gloo backend)" in log
    assert log.count("epoch 2: loss") == 1 and "[rank 1]" not in log
    shown = subprocess.run(
        ["scontrol", "show", "job", job], env=slurm, capture_output=True, text=True, check=False
    ).stdout
    assert re.search(r"TresPerJob=gres:gpu:2\b", shown), shown


def test_a_failing_job_is_reported_with_its_log_not_waited_on(slurm_run, slurm):
    workdir, _ = slurm_run
    broken = {**copy.deepcopy(SLURM_TINY), "test_sets": {"broken": str(workdir / "no_such_dir")}}
    code, output = snakemake_slurm(workdir, broken, slurm, "--retries", "0", timeout=240)
    assert code != 0
    assert "Error in rule import_test_set" in output, output[-3000:]
    assert "exp/prepare/synth_digits/log/import_broken.log" in output, output[-3000:]
