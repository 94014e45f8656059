"""SIGKILL each long stage in the middle, run the same command again: it completes, training resumes from
its last saved epoch, and results.tsv and the weights are those of an uninterrupted run (CPU, same seed).

Feature extraction, DAE and acoustic-model training are killed together with Snakemake (the whole process
group: nothing gets to clean up, and the stale lock is lifted with ``snakemake --unlock`` as the README
says; ``test_a_plain_rerun_...`` records that this step is still needed); decoding is killed alone
(Snakemake survives, records the failure and releases its lock).

Each stage is killed in a copy of the finished reference run whose outputs from that stage on were
deleted (the feature directories; exp/<tag>/ but the tokenizer, and the model for decoding): Snakemake
then runs that stage and everything after it exactly as in a fresh run, and the test does not pay again
for what comes before it.
"""

import re
import shutil
import subprocess
import sys

import pytest

from speechrecipe import checkpoint

from .lib import (
    CORPUS,
    TINY,
    assert_same_features,
    assert_same_outcome,
    copy_run,
    deep_merge,
    exp,
    has_rule,
    keep_only,
    kill_group,
    kill_job,
    load_scp,
    rerun,
    snakemake,
    snakemake_command,
    start,
    temporaries,
    wait_for,
    write_config,
)

FEATS = f"data/{CORPUS}/fbank"


def feature_temporaries(workdir):
    return sorted((workdir / FEATS).glob("*/data/.feats.*.ark.*.tmp*"))


def epoch_of(path) -> int:
    return int(re.match(r"epoch-(\d+)\.pt$", path.name).group(1))


def test_killed_feature_extraction_is_redone_and_leaves_no_archive_that_looks_complete(reference_run, tmp_path):
    workdir = copy_run(reference_run, tmp_path / "run")
    shutil.rmtree(workdir / FEATS)
    keep_only(workdir, "tokens")
    proc = start(workdir)
    # In the middle of a shard: its archive is being written under a temporary name.
    wait_for(proc, lambda: feature_temporaries(workdir), "a feature job had started writing its archive")
    kill_group(proc)

    left = feature_temporaries(workdir)
    assert left, "the kill came after the shard had finished"
    for tmp in left:
        job = re.match(r"\.feats\.(\d+)\.ark\.", tmp.name).group(1)
        # The index is renamed into place last: without it nothing claims to be complete.
        assert not (tmp.parent / f"feats.{job}.scp").exists(), f"{tmp.parent}/feats.{job}.scp left by a killed job"
    for scp in (workdir / FEATS).glob("*/data/feats.*.scp"):  # the shards that do claim to be done are whole
        matrices = load_scp(workdir, scp)
        assert matrices and all(m.shape[0] > 0 for m in matrices.values()), scp

    again, _ = rerun(workdir)
    assert "make_features" in again.stdout + again.stderr
    assert not temporaries(workdir), f"temporaries left after the re-run: {temporaries(workdir)}"
    assert_same_features(workdir, reference_run)
    assert_same_outcome(workdir, reference_run)


def test_killed_training_resumes_from_its_last_epoch_and_matches_an_uninterrupted_run(reference_run, tmp_path):
    workdir = copy_run(reference_run, tmp_path / "run")
    am = exp(workdir) / "am"
    keep_only(workdir, "tokens")
    proc = start(workdir)
    wait_for(proc, lambda: (am / "epoch-1.pt").exists(), "training had saved its first epoch")
    kill_group(proc)

    assert not (am / "final.pt").exists(), "the kill came after training had finished"
    saved = checkpoint.epoch_checkpoints(am)
    for _, path in saved:
        checkpoint.load(path)  # every checkpoint under its final name is complete
    last = saved[-1][0]
    assert last < TINY["am"]["train"]["max_epochs"]

    rerun(workdir)
    log = (am / "log/train.log").read_text()
    assert f"resuming from exp/tiny/am/epoch-{last}.pt (epoch {last}," in log
    assert not re.search(r"\bepoch 1: loss", log), "the re-run trained epoch 1 again"
    assert re.search(rf"\bepoch {last + 1}: loss", log)
    assert_same_outcome(workdir, reference_run)


def test_killed_decoding_is_redone_and_gives_the_same_results(reference_run, tmp_path):
    workdir = copy_run(reference_run, tmp_path / "run")
    keep_only(workdir, "tokens", "am")
    decode = exp(workdir) / "decode_dev"
    started = decode / "log/decode.log"
    proc = start(workdir)
    # In the middle: the decoding job has started (its shell opened the log) and has not written hyp.txt.
    wait_for(proc, started.exists, "decoding of dev had started")
    assert kill_job(proc, "workflow/scripts/decode.py"), "no decoder process to kill"
    proc.wait()
    assert proc.returncode != 0, "the run finished anyway: the kill came after decoding"
    assert not (decode / "hyp.txt").exists()

    again, locked = rerun(workdir)
    assert not locked, "Snakemake outlived its job, so it must have released its lock"
    assert "rule decode:" in again.stdout + again.stderr
    assert_same_outcome(workdir, reference_run)


# The tiniest DAE: trained on noisy copies of the tiny training set mixed with short generated noise.
TINY_DAE = deep_merge(
    TINY,
    {
        "am": {"init": "dae"},
        "noise": {"generated_seconds": 5},
        # ~0.04 s per epoch at 400 frames per batch: 30 epochs of smaller batches leave a window of seconds.
        "dae": {"threads": 1, "train": {"max_epochs": 30, "batch_frames": 200, "warmup_steps": 5}},
    },
)


@pytest.mark.skipif(
    not has_rule("train_dae"),
    reason="the workflow has no rule train_dae yet (denoising-autoencoder pretraining, "
    "workflow/rules/dae.smk); this test switches on when it lands",
)
def test_killed_dae_training_resumes_and_matches_an_uninterrupted_run(reference_run, tmp_path):
    # The DAE config's own uninterrupted run: the reference run's data and clean features (the same
    # config for them) plus everything the DAE adds or changes, run by Snakemake from there.
    reference = copy_run(reference_run, tmp_path / "reference")
    write_config(reference, TINY_DAE)
    snakemake(reference)
    workdir = copy_run(reference, tmp_path / "run")
    dae, _am = exp(workdir) / "dae", exp(workdir) / "am"
    keep_only(workdir, "tokens")
    proc = start(workdir)
    wait_for(proc, lambda: (dae / "epoch-1.pt").exists(), "DAE training had saved its first epoch")
    kill_group(proc)

    assert not (dae / "final.pt").exists(), "the kill came after DAE training had finished"
    last = max(epoch_of(p) for p in dae.glob("epoch-*.pt"))
    for path in dae.glob("epoch-*.pt"):
        checkpoint.load(path)

    rerun(workdir)
    log = (dae / "log/train.log").read_text()
    assert f"resuming from exp/tiny/dae/epoch-{last}.pt" in log
    assert not re.search(r"DAE epoch 1: loss", log), "the re-run trained DAE epoch 1 again"
    assert_same_outcome(workdir, reference, models=("dae/final.pt", "am/final.pt"))


def test_the_readme_command_recovers_after_snakemake_itself_was_killed(tmp_path):
    """kill -9 of Snakemake leaves its lock; `make run` first asks speechrecipe.cli.lock, which removes the lock
    because its holder is provably gone, and the run completes. A plain `snakemake` still stops on the lock."""
    workdir = tmp_path / "run"
    write_config(workdir, TINY)
    target = f"data/{CORPUS}/train/validation.txt"
    proc = start(workdir, target)
    wait_for(proc, lambda: (workdir / f"exp/prepare/{CORPUS}/log/prepare.log").exists(), "data preparation started")
    kill_group(proc)
    assert not (workdir / target).exists() and list((workdir / ".snakemake/locks").iterdir())
    plain = snakemake(workdir, target, check=False)
    assert plain.returncode != 0 and "LockException" in plain.stdout + plain.stderr
    command = snakemake_command(workdir, target)
    recovery = subprocess.run(
        [sys.executable, "-m", "speechrecipe.cli.lock", *command[1:]], capture_output=True, text=True, check=False
    )
    assert recovery.returncode == 0 and "Removing a stale Snakemake lock" in recovery.stderr, recovery.stderr
    again = snakemake(workdir, target, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-2000:]
    assert (workdir / target).exists()
