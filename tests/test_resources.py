"""What each job asks for: threads, memory, time and GPUs; the local GPU limit; CPU jobs never touching CUDA."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake_on

TINY = {"tag": "tiny", "am": {"threads": 1}}
# The jobs of the data, feature, tokenizer, decoding, scoring, LM and export stages: CPU only.
# The training scripts may use a GPU; every other stage runs on the CPU.
CPU_SCRIPTS = sorted(
    p for p in (ROOT / "workflow/scripts").glob("*.py") if p.name not in ("train_am.py", "train_dae.py")
)
CUDA_CALL = re.compile(r"torch\.cuda|\.cuda\(|pick_device|init_process_group")


def dry_run(workdir: Path, *configs: dict, args=(), env=None) -> str:
    files = []
    for i, config in enumerate([TINY, *configs]):
        files.append(workdir / f"c{i}.yaml")
        files[-1].write_text(yaml.safe_dump(config))
    cmd = [
        *snakemake_on(workdir),
        "-n",
        "--configfile",
        *map(str, files),
        *args,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=workdir, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def job_resources(output: str, rule: str) -> dict[str, str]:
    """The ``resources:`` line of the first job of ``rule`` in a dry run's listing."""
    block = re.search(rf"^(?:local)?rule {rule}:\n(.*?)(?:\n\n|\n\[|\Z)", output, flags=re.MULTILINE | re.DOTALL)
    assert block, f"no job of {rule} in:\n{output[-2000:]}"
    line = re.search(r"resources: (.*)", block.group(1))
    return dict(item.split("=", 1) for item in line.group(1).split(", ")) if line else {}


@pytest.fixture
def fake_gpus(tmp_path):
    """A PATH with an nvidia-smi that lists ``n`` GPUs."""

    def make(n: int) -> dict:
        bin_dir = tmp_path / f"bin{n}"
        bin_dir.mkdir(exist_ok=True)
        lines = "".join(f'echo "GPU {i}: NVIDIA H200 (UUID: GPU-{i})"\n' for i in range(n))
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{lines}")
        (bin_dir / "nvidia-smi").chmod(0o755)
        return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": ""} | (
            {} if n == 0 else {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(n)))}
        )

    return make


def test_every_rule_declares_threads_memory_and_time():
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        blocks = re.split(r"^rule ", text, flags=re.MULTILINE)[1:]
        for block in blocks:
            name = block.split(":", 1)[0]
            assert "threads:" in block, f"{smk.name}: rule {name} declares no threads"
            assert ("mem_mb=" in block and "runtime=" in block) or "training_resources(" in block, (
                f"{smk.name}: rule {name} declares no mem_mb/runtime"
            )


def test_the_local_gpu_limit_is_the_number_of_visible_gpus(tmp_path, fake_gpus):
    # One GPU: the training job takes it, and however many GPUs it asks for, never more than there are.
    out = dry_run(tmp_path, {"am": {"num_gpus": 2}}, args=["--cores", "8"], env=fake_gpus(1))
    assert job_resources(out, "train_am")["gpu"] == "1"
    # Two GPUs, CUDA_VISIBLE_DEVICES narrowing them to one.
    out = dry_run(
        tmp_path, {"am": {"num_gpus": 2}}, args=["--cores", "8"], env={**fake_gpus(2), "CUDA_VISIBLE_DEVICES": "1"}
    )
    assert job_resources(out, "train_am")["gpu"] == "1"
    out = dry_run(tmp_path, {"am": {"num_gpus": 2}}, args=["--cores", "8"], env=fake_gpus(2))
    assert job_resources(out, "train_am")["gpu"] == "2"
    # No GPU: the job still runs (on the CPU), with gpu=0.
    out = dry_run(tmp_path, args=["--cores", "8"], env=fake_gpus(0))
    assert job_resources(out, "train_am")["gpu"] == "0"
    # --resources gpu=N is the user's word.
    out = dry_run(tmp_path, {"am": {"num_gpus": 4}}, args=["--cores", "8", "--resources", "gpu=3"], env=fake_gpus(1))
    assert job_resources(out, "train_am")["gpu"] == "3"


def test_only_training_asks_for_a_gpu_and_only_when_use_gpu_is_on(tmp_path, fake_gpus):
    out = dry_run(tmp_path, args=["--cores", "8"], env=fake_gpus(1))
    for rule in ("prepare_data", "make_features", "gather_features", "train_tokenizer", "decode", "score"):
        resources = job_resources(out, rule)
        assert "gpu" not in resources and "mem_mb" in resources and "runtime" in resources, (rule, resources)
    resources = job_resources(out, "train_am")
    assert resources["mem_mb"] == "6000" and resources["runtime"] == "1440"
    out = dry_run(
        tmp_path, {"am": {"use_gpu": False, "num_gpus": 2, "mem_mb": 1000}}, args=["--cores", "8"], env=fake_gpus(1)
    )
    resources = job_resources(out, "train_am")
    assert "gpu" not in resources and resources["mem_mb"] == "2000"
    assert re.search(r"rule train_am:.*?threads: 2", out, flags=re.DOTALL)


def test_the_slurm_profile_asks_for_gpus_per_job_and_nodes_for_multi_node(tmp_path):
    profile = ["--workflow-profile", str(ROOT / "profiles/slurm")]
    env = {
        "SPEECHRECIPE_SLURM_GPU_PARTITION": "gpu",
        "SPEECHRECIPE_SLURM_ACCOUNT": "speech",
        "SPEECHRECIPE_SLURM_GPU_MODEL": "a100",
    }
    out = dry_run(tmp_path, args=profile, env=env)
    train = job_resources(out, "train_am")
    # Not capped by the submitting host's GPUs: the cluster allocates them.
    assert train["gpu"] == "1" and train["slurm_partition"] == "gpu" and train["gpu_model"] == "a100"
    assert train["slurm_account"] == "speech"
    assert job_resources(out, "make_features")["slurm_account"] == "speech"
    assert "slurm_partition" not in job_resources(out, "make_features")
    out = dry_run(tmp_path, {"am": {"num_gpus": 4, "num_nodes": 2}}, args=profile)
    train = job_resources(out, "train_am")
    assert (train["nodes"], train["tasks"], train["gres"], train["mpi"]) == ("2", "2", "gpu:4", "srun")
    assert "gpu" not in train  # --gpus would count all nodes together; gres is per node


def test_cpu_stage_code_never_calls_cuda():
    """Nothing the CPU jobs run initializes CUDA: importing torch does not, torch.cuda.* would."""
    library = ROOT / "workflow/speechrecipe"
    seen, todo = set(), list(CPU_SCRIPTS)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                parts = node.module.split(".")
                if node.level == 1:
                    parts = ["speechrecipe", *parts]
                if parts[0] == "speechrecipe":
                    names = parts[1:] or [a.name for a in node.names]
                    todo += [library / f"{n}.py" for n in names if (library / f"{n}.py").exists()]
            elif isinstance(node, ast.ImportFrom) and node.level == 1:  # from . import checkpoint
                todo += [library / f"{a.name}.py" for a in node.names if (library / f"{a.name}.py").exists()]
    assert library / "training.py" not in seen
    for path in seen:
        calls = CUDA_CALL.findall(path.read_text())
        assert not calls, f"{path.relative_to(ROOT)} reaches CUDA ({calls}): CPU jobs must not initialize it"


GUARD = """
import runpy, sys, torch
def refuse(*args, **kwargs):
    raise SystemExit("CUDA was touched by a CPU job")
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "set_device"):
    setattr(torch.cuda, name, refuse)
script, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
"""


def test_cpu_jobs_run_with_cuda_forbidden(fsdd_features, tmp_path):
    """The stage scripts do their real work with every CUDA entry point of torch made to fail."""

    def guarded(script, *args):
        result = subprocess.run(
            [sys.executable, "-c", GUARD, str(ROOT / "workflow/scripts" / script), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, f"{script}: {result.stderr[-2000:]}"

    data = fsdd_features / "data/dev"
    guarded("validate_data_dir.py", data)
    feats = tmp_path / "fbank"
    guarded(
        "make_features.py", data, feats, "--job", 1, "--nj", 1, "--config", '{"num_mel_bins": 40, "sample_rate": 8000}'
    )
    guarded("gather_features.py", data, feats, "--nj", 1)
    guarded("train_tokenizer.py", data / "text", tmp_path / "sp.model", "--vocab-size", 20)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "workflow/scripts/train_am.py"),
            fsdd_features / "fbank/train",
            fsdd_features / "fbank/dev",
            fsdd_features / "tokens/sp.model",
            tmp_path / "am",
            "--model",
            json.dumps({"hidden": 8, "layers": 1}),
            "--train",
            '{"max_epochs": 1}',
            "--use-gpu",
            "false",
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    guarded("decode.py", tmp_path / "am/final.pt", feats, tmp_path / "hyp.txt", "--config", '{"method": "beam"}')
    guarded("score.py", data / "text", tmp_path / "hyp.txt", tmp_path / "score")
    assert (tmp_path / "score/wer").read_text().startswith("%WER")
