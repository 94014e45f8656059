"""The noise stages through Snakemake on the tiny synthetic corpus: noisy test sets, multi-condition
training, DAE pretraining and initialization, DAE enhancement at decoding."""

import copy

import pandas as pd
import pytest
from test_recipe import TINY, planned_rules, snakemake

from conftest import SHARED_DATA

NOISE_DIR = SHARED_DATA / "noise" / "speech_commands"


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    if not NOISE_DIR.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE_DIR}")
    workdir = tmp_path_factory.mktemp("noisy_recipe")
    config = copy.deepcopy(TINY)
    config.pop("test_sets", None)  # test_recipe.py's fixture adds its own test set to TINY
    config["am"].update(init="dae", multi_condition=True)
    config["am"]["train"]["freeze_steps"] = 10
    config["dae"] = {"threads": 1, "train": {"max_epochs": 2, "batch_frames": 2000}}
    config["noise"] = {
        "noise_dirs": [str(NOISE_DIR)],
        "test_snrs": [5],
        "test_noise_dirs": {"sc": [str(NOISE_DIR)], "babble": ["generated:babble"]},
    }
    snakemake(workdir, config)
    return workdir, config


def test_noisy_sets_are_scored_beside_the_clean_ones(noisy_run):
    workdir, _ = noisy_run
    results = pd.read_csv(workdir / "exp/tiny/results.tsv", sep="\t")
    rows = results.set_index("set")
    assert sorted(rows.index) == ["dev", "test", "test_babble_5dB", "test_sc_5dB"]
    assert rows.loc["test_sc_5dB", ["base", "noise", "snr"]].tolist() == ["test", "sc", 5.0]
    assert rows.loc["test_babble_5dB", "noise"] == "babble" and rows.loc["test", "noise"] == "clean"
    assert pd.isna(rows.loc["test", "snr"])
    assert "WER (%) by SNR" in (workdir / "exp/tiny/RESULTS.md").read_text()
    for name in ("test_sc_5dB", "test_babble_5dB", "train_noisy", "dev_noisy"):
        lines = (workdir / f"data/synth_digits/{name}/utt2noise").read_text().splitlines()
        assert len(lines) == len((workdir / f"data/synth_digits/{name}/text").read_text().splitlines())
    babble = (workdir / "data/synth_digits/test_babble_5dB/utt2noise").read_text()
    assert "noise_generated/babble.wav" in babble


def test_the_dae_starts_the_multi_condition_acoustic_model(noisy_run):
    workdir, _ = noisy_run
    exp = workdir / "exp/tiny"
    assert (exp / "dae/final.pt").exists() and len((exp / "dae/history.tsv").read_text().splitlines()) == 3
    log = (exp / "am/log/train.log").read_text()
    assert "from the DAE exp/tiny/dae/final.pt" in log
    assert "adding 16 utterances of data/synth_digits/fbank/train_noisy" in log
    assert "frozen for the first 10 steps" in log


def test_enhancement_reruns_only_decoding(noisy_run):
    workdir, config = noisy_run
    enhanced = copy.deepcopy(config)
    enhanced["decode"]["enhance"] = True
    planned = planned_rules(snakemake(workdir, enhanced, args=["-n"]))
    assert planned <= {"decode", "score", "results", "plots", "experiment_config"} and "decode" in planned
    snakemake(workdir, enhanced)
    assert "enhanced by the DAE" in (workdir / "exp/tiny/decode_test_sc_5dB/log/decode.log").read_text()
