"""On-the-fly augmentation (speechrecipe.onthefly): a function of (seed, utterance, epoch), whoever computes it."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHARED_DATA, train_am_on
from speechrecipe.archive import load_matrix
from speechrecipe.cmvn import global_stats, stats_to_mean_std
from speechrecipe.config import AMTrainConfig, FeatureConfig, OnTheFlyConfig
from speechrecipe.ctc_task import NO_SPECAUG, CTCBatches
from speechrecipe.dataset import FeatureSet
from speechrecipe.onthefly import OnTheFly, audio_table
from speechrecipe.trainer import RunBatches

FEATURES = FeatureConfig(type="fbank", num_mel_bins=40, sample_rate=8000)  # conftest's fsdd_features
NOISE = SHARED_DATA / "noise" / "speech_commands"
SEED = 5


@pytest.fixture(scope="module")
def train_set(fsdd_features):
    mean_std = stats_to_mean_std(global_stats(fsdd_features / "fbank/train"))
    return FeatureSet(fsdd_features / "fbank/train", "global", None, mean_std)


def augmenter(fsdd_features, train_set, **config) -> OnTheFly:
    if config.get("noise_dirs") and not NOISE.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE}")
    audio = audio_table(fsdd_features / "data/train", train_set.utts)
    return OnTheFly(OnTheFlyConfig(**config), audio, FEATURES, SEED)


NOISY_SPEED = {"speed_perturb": [0.9, 1.0, 1.1], "noise_dirs": [str(NOISE)], "noise_probability": 1.0}


def test_speed_one_without_noise_gives_the_stored_features(fsdd_features, train_set):
    onthefly = augmenter(fsdd_features, train_set, speed_perturb=[1.0])
    for i in range(0, len(train_set), 9):
        stored = np.asarray(load_matrix(train_set.entries[i]))
        np.testing.assert_allclose(onthefly.feats(train_set.utts[i], epoch=1), stored, atol=1e-4)
        normalized = onthefly.utterance(train_set, i, epoch=1)
        np.testing.assert_allclose(normalized.feats, train_set[i].feats, atol=1e-4)
        assert normalized.tokens == train_set[i].tokens


def test_the_same_seed_utterance_and_epoch_give_the_same_features_and_another_epoch_others(fsdd_features, train_set):
    first, second = (augmenter(fsdd_features, train_set, **NOISY_SPEED) for _ in range(2))
    changed = 0
    for i in range(0, len(train_set), 7):
        a = first.utterance(train_set, i, epoch=2).feats
        np.testing.assert_array_equal(a, second.utterance(train_set, i, epoch=2).feats)
        other = first.utterance(train_set, i, epoch=3).feats
        changed += a.shape != other.shape or not np.allclose(a, other)
        # The bucketing length is the stored one over the drawn factor: near the real one.
        assert abs(len(a) - first.lengths(train_set, 2)[i]) <= 2
    assert changed == len(range(0, len(train_set), 7))


def test_dither_is_drawn_from_the_utterance_and_epoch_and_leaves_training_draws_alone(fsdd_features, train_set):
    audio = audio_table(fsdd_features / "data/train", train_set.utts)
    dithered = OnTheFly(OnTheFlyConfig(speed_perturb=[1.0]), audio, FEATURES.replace(dither=1.0), SEED)
    utt = train_set.utts[0]
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = dithered.feats(utt, epoch=1)
    assert torch.equal(torch.get_rng_state(), state)  # dropout and the like draw as without it
    np.testing.assert_array_equal(first, dithered.feats(utt, epoch=1))
    assert not np.array_equal(first, dithered.feats(utt, epoch=2))


def batches(maker, workers: int) -> list[tuple[list[str], torch.Tensor]]:
    config = AMTrainConfig(batch_frames=2000, seed=SEED)
    plan = RunBatches(maker, config, first_epoch=1, position=0, last_epoch=2, rank=0, world=1)
    loader = torch.utils.data.DataLoader(plan, batch_size=None, num_workers=workers, worker_init_fn=one_thread)
    return [(batch.utts, batch.inputs[0]) for batch in loader]


def one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)


def test_batches_do_not_depend_on_the_number_of_loader_workers(fsdd_features, train_set):
    maker = CTCBatches(train_set, NO_SPECAUG, SEED, onthefly=augmenter(fsdd_features, train_set, **NOISY_SPEED))
    alone, shared = batches(maker, 0), batches(maker, 2)
    assert [utts for utts, _ in alone] == [utts for utts, _ in shared]
    for (_, a), (_, b) in zip(alone, shared, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_tiny_run_trains_with_onthefly_augmentation(fsdd_features, tmp_path):
    if not NOISE.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE}")
    model = {"hidden": 16, "layers": 1, "subsampling_factor": 2}
    train = {"max_epochs": 2, "batch_frames": 1500, "warmup_steps": 5, "seed": SEED, "onthefly": NOISY_SPEED}
    command = [
        *train_am_on(fsdd_features, tmp_path, model, train, "speaker"),
        "--features",
        json.dumps(FEATURES.to_dict()),
        "--audio-dir",
        str(fsdd_features / "data/train"),
        "--threads",
        "1",
        "--loader-workers",
        "1",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on-the-fly augmentation of 100 of 100 training utterances" in result.stderr
    rows = (tmp_path / "history.tsv").read_text().splitlines()
    losses = [float(line.split("\t")[2]) for line in rows[1:]]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_onthefly_without_the_training_sets_audio_is_refused(fsdd_features, tmp_path):
    train = {"max_epochs": 1, "onthefly": {"speed_perturb": [0.9, 1.1]}}
    command = [*train_am_on(fsdd_features, tmp_path, {"hidden": 8, "layers": 1}, train), "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "--audio-dir" in result.stderr
    elsewhere = [*command, f"--audio-dir={fsdd_features / 'data/dev'}"]
    other = subprocess.run(elsewhere, capture_output=True, text=True, check=False)
    assert other.returncode != 0 and "holds none of the utterances" in other.stderr


def test_the_recipe_trains_on_the_clean_features_and_gives_train_am_the_audio(tmp_path):
    from test_recipe import TINY, planned_rules, snakemake

    onthefly = {"am": {"train": {"onthefly": {"speed_perturb": [0.9, 1.0, 1.1]}}}}
    result = snakemake(tmp_path, TINY, onthefly, args=["-n", "-p"])
    assert "train_am" in planned_rules(result)
    assert "--audio-dir=data/synth_digits/train " in result.stdout
    assert "fbank/train_sp" not in result.stdout  # no speed-perturbed copy on disk
    both = {**onthefly, "features": {"speed_perturb": [0.9, 1.0, 1.1]}}
    refused = snakemake(tmp_path, TINY, both, args=["-n"], check=False)
    assert refused.returncode != 0 and "keep one" in refused.stdout + refused.stderr


# --- the denoising autoencoder's noisy inputs, mixed as batches are made (dae.onthefly) ---------------------------

DAE_NOISE = {"noise_dirs": [str(NOISE)], "snrs": [0, 5, 10, 20], "noise_probability": 1.0}


def test_dae_pairs_mixed_on_the_fly_keep_the_stored_clean_side_and_draw_noise_by_epoch(fsdd_features, train_set):
    from speechrecipe.onthefly import MixedPairs

    pairs = MixedPairs(train_set, augmenter(fsdd_features, train_set, **DAE_NOISE))
    again = MixedPairs(train_set, augmenter(fsdd_features, train_set, **DAE_NOISE))
    assert len(pairs) == len(train_set) and list(pairs.lengths) == list(train_set.lengths)
    for k in range(0, len(pairs), 11):
        utt, noisy, clean = pairs.pair(k, epoch=1)
        assert utt == train_set.utts[k] == pairs.utt(k)
        np.testing.assert_array_equal(clean, train_set[k].feats)  # the target is the stored clean features
        assert noisy.shape == clean.shape and not np.allclose(noisy, clean, atol=0.1)
        np.testing.assert_array_equal(noisy, again.pair(k, epoch=1)[1])
        assert not np.allclose(noisy, pairs.pair(k, epoch=2)[1], atol=0.1)  # another epoch, another noise


def test_dae_batches_mixed_on_the_fly_do_not_depend_on_the_number_of_loader_workers(fsdd_features, train_set):
    from speechrecipe.config import DAETrainConfig
    from speechrecipe.dae_task import DAEBatches
    from speechrecipe.onthefly import MixedPairs

    maker = DAEBatches(MixedPairs(train_set, augmenter(fsdd_features, train_set, **DAE_NOISE)), 3, 120)
    config = DAETrainConfig(batch_frames=2000, seed=SEED)

    def made(workers):
        plan = RunBatches(maker, config, first_epoch=1, position=0, last_epoch=2, rank=0, world=1)
        loader = torch.utils.data.DataLoader(plan, batch_size=None, num_workers=workers, worker_init_fn=one_thread)
        return [(batch.utts, batch.inputs[0]) for batch in loader]

    alone, shared = made(0), made(1)
    assert [utts for utts, _ in alone] == [utts for utts, _ in shared]
    for (_, a), (_, b) in zip(alone, shared, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_tiny_dae_run_mixes_its_noise_on_the_fly(fsdd_features, tmp_path):
    from conftest import ROOT, run_script

    if not NOISE.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE}")
    base = fsdd_features
    command = [
        ROOT / "workflow/scripts/train_dae.py",
        base / "data/train",  # the clean sets' audio: no noisy copy on disk
        base / "fbank/train",
        base / "data/dev",
        base / "fbank/dev",
        tmp_path / "dae",
        "--model",
        json.dumps({"hidden": 16, "layers": 1, "subsampling_factor": 2}),
        "--train",
        json.dumps({"max_epochs": 2, "batch_frames": 1500, "warmup_steps": 5, "lr": 0.005, "seed": SEED}),
        "--features",
        json.dumps(FEATURES.to_dict()),
        "--onthefly",
        json.dumps(DAE_NOISE),
        "--cmvn",
        "utterance",
        "--threads",
        "1",
        "--no-progress",
    ]
    result = run_script(*command, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "dae/history.tsv").read_text().splitlines()
    dev_losses = [float(line.split("\t")[3]) for line in rows[1:]]
    assert len(dev_losses) == 2 and all(np.isfinite(dev_losses))
    assert (tmp_path / "dae/final.pt").is_file()
    # the trained DAE's error by SNR, against the noisy input's own (the plot of exp/<tag>/plots)
    run_script(
        ROOT / "workflow/scripts/dae_loss_by_snr.py",
        tmp_path / "dae",
        base / "fbank/dev",
        base / "data/dev",
        tmp_path,
        "--noise",
        f"sc={NOISE}",
        "--snrs",
        0,
        20,
    )
    by_snr = pd.read_csv(tmp_path / "dae_loss_by_snr.tsv", sep="\t")
    assert list(by_snr["snr"]) == [0, 20] and (tmp_path / "dae_loss_by_snr.png").stat().st_size > 0
    assert by_snr["input_loss"][0] > by_snr["input_loss"][1] > 0  # more noise, further from the clean features
    # speed perturbation would change the noisy side's length against its clean target
    speed = run_script(*command[:-9], "--onthefly", json.dumps({**DAE_NOISE, "speed_perturb": [0.9]}), check=False)
    assert speed.returncode != 0 and "no speed_perturb for the DAE" in speed.stderr


def test_the_recipe_mixes_the_dae_noise_on_the_fly_without_noisy_copies(tmp_path):
    from test_recipe import TINY, planned_rules, snakemake

    dae = {"am": {"init": "dae"}, "dae": {"train": {"max_epochs": 1}}}
    copies = snakemake(tmp_path, TINY, dae, args=["-n", "-p"])
    assert {"train_dae", "mix_noise"} <= planned_rules(copies)
    mixed = snakemake(tmp_path, TINY, dae, {"dae": {"onthefly": True}}, args=["-n", "-p"])
    assert "train_dae" in planned_rules(mixed) and "mix_noise" not in planned_rules(mixed)
    assert "--onthefly" in mixed.stdout and "train_noisy" not in mixed.stdout
    assert "noise_generated/babble.wav" in mixed.stdout  # the training noise: generated, as the copies'
