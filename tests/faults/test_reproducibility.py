"""Two runs with the same seed on the CPU give the same WER and the same weights, and the features do not
depend on the number of feature jobs (no dither: a feature is a function of its audio alone)."""

from .lib import TINY, assert_same_features, assert_same_outcome, deep_merge, snakemake, write_config


def test_a_second_run_with_another_nj_gives_the_same_features_weights_and_wer(reference_run, tmp_path):
    assert TINY["features"]["nj"] != 1
    workdir = tmp_path / "run"
    write_config(workdir, deep_merge(TINY, {"features": {"nj": 1}}))
    snakemake(workdir)
    assert sorted(p.name for p in (workdir / "data/synth_digits/fbank/train/data").glob("feats.*.ark")) == [
        "feats.1.ark"
    ]
    assert_same_features(workdir, reference_run)
    assert_same_outcome(workdir, reference_run)
