"""A truncated archive or checkpoint (a full disk, a copy cut short: never a killed job, whose outputs appear
only when complete) is detected and rebuilt, never loaded."""

import numpy as np

from conftest import ROOT, run_script, write_fsdd_data_dir

from .lib import CORPUS, assert_same_features, assert_same_outcome, copy_run, exp, keep_only, load_scp, rerun, snakemake

FBANK = '{"type": "fbank", "num_mel_bins": 23, "sample_rate": 8000}'


def truncate(path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def test_a_truncated_feature_archive_is_detected_where_it_is_loaded_and_rebuilt(reference_run, tmp_path):
    workdir = copy_run(reference_run, tmp_path / "run")
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout  # the copy is a finished run
    feats = workdir / f"data/{CORPUS}/fbank/dev"
    truncate(feats / "data/feats.2.ark")

    # Decoding again (README: --forcerun decode) is the first job to read the archive.
    first = snakemake(workdir, "--forcerun", "decode", check=False)
    output = first.stdout + first.stderr
    assert first.returncode != 0, "a truncated archive was decoded"
    assert "feats.2.ark" in output and "truncated" in output and "run the same snakemake command again" in output
    for removed in ("data/feats.2.ark", "data/feats.2.scp", "feats.scp"):
        assert not (feats / removed).exists(), f"{removed} was left in place"

    again, _ = rerun(workdir, "--forcerun", "decode")  # the same command
    assert "rule make_features:" in again.stdout + again.stderr
    assert_same_features(workdir, reference_run, sets=("dev",))
    assert_same_outcome(workdir, reference_run)


def test_gathering_a_truncated_job_archive_removes_it_and_names_it(fsdd_recordings, tmp_path):
    data = write_fsdd_data_dir(tmp_path / "data", fsdd_recordings, ["lucas"], range(2))
    out = tmp_path / "fbank"

    def extract(*jobs):
        for job in jobs:
            run_script(
                ROOT / "workflow/scripts/make_features.py", data, out, "--job", job, "--nj", 2, "--config", FBANK
            )

    extract(1, 2)
    whole = (out / "data/feats.2.ark").read_bytes()
    truncate(out / "data/feats.2.ark", keep=0.9)
    gathered = run_script(ROOT / "workflow/scripts/gather_features.py", data, out, "--nj", 2, check=False)
    assert gathered.returncode != 0
    assert "job(s) 2" in gathered.stderr and "truncated or corrupt" in gathered.stderr
    assert "run the same snakemake command again" in gathered.stderr
    assert not (out / "data/feats.2.ark").exists() and not (out / "data/feats.2.scp").exists()
    assert (out / "data/feats.1.scp").exists() and not (out / "feats.scp").exists()

    extract(2)  # what the re-run does
    run_script(ROOT / "workflow/scripts/gather_features.py", data, out, "--nj", 2)
    assert (out / "data/feats.2.ark").read_bytes() == whole
    assert len(load_scp(tmp_path, out / "feats.scp")) == 20
    assert all(np.isfinite(m).all() for m in load_scp(tmp_path, out / "feats.scp").values())


def test_a_truncated_newest_checkpoint_is_skipped_and_its_epoch_trained_again(reference_run, tmp_path):
    workdir = copy_run(reference_run, tmp_path / "run")
    am = exp(workdir) / "am"
    keep_only(workdir, "tokens", "am")  # training had not finished: no final.pt, nothing after it
    (am / "final.pt").unlink()
    newest = max(am.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    epoch = int(newest.stem.split("-")[1])
    truncate(newest)

    rerun(workdir)
    log = (am / "log/train.log").read_text()
    assert f"skipping unreadable checkpoint: exp/tiny/am/epoch-{epoch}.pt" in log
    assert f"resuming from exp/tiny/am/epoch-{epoch - 1}.pt" in log
    assert f"epoch {epoch}: loss" in log
    assert_same_outcome(workdir, reference_run)
