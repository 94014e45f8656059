"""Training on real FSDD audio: learning happens, a SIGKILLed run resumes, decoding works."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, train_am_on
from speechrecipe import checkpoint
from speechrecipe.cmvn import global_stats, stats_to_mean_std
from speechrecipe.config import AMTrainConfig, ModelConfig
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import FeatureSet
from speechrecipe.decoding import BeamSearch
from speechrecipe.model import CTCModel
from speechrecipe.recognizer import Recognizer
from speechrecipe.schedule import learning_rate
from speechrecipe.tokens import Tokenizer
from speechrecipe.trainer import train

MODEL = {"hidden": 32, "layers": 2, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.1}
TRAIN = {
    "max_epochs": 4,
    "batch_frames": 1500,
    "lr": 0.003,
    "warmup_steps": 10,
    "average_best": 2,
    "seed": 3,
}


def train_command(fsdd_features, exp_dir, **overrides):
    return [
        *train_am_on(fsdd_features, str(exp_dir), MODEL, {**TRAIN, **overrides}, "speaker"),
        "--threads",
        "1",
        "--no-progress",
    ]


def test_learning_rate_warms_up_then_decays():
    assert learning_rate(5, 1.0, 10) == pytest.approx(0.5)
    assert learning_rate(10, 1.0, 10) == pytest.approx(1.0)
    assert learning_rate(40, 1.0, 10) == pytest.approx(0.5)


def test_training_lowers_the_loss_on_real_audio(fsdd_features, tmp_path):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    mean_std = stats_to_mean_std(global_stats(fsdd_features / "fbank/train"))
    train_set = FeatureSet(fsdd_features / "fbank/train", "global", tok, mean_std)
    dev_set = FeatureSet(fsdd_features / "fbank/dev", "global", tok, mean_std)
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=40, vocab_size=tok.vocab_size, **MODEL))
    config = AMTrainConfig.from_dict({**TRAIN, "max_epochs": 5})
    final = train(
        CTCTask(model, train_set, dev_set, config.specaug),
        tmp_path,
        config,
        "hash",
        device=torch.device("cpu"),
        progress=False,
    )
    history = final["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert (tmp_path / "history.tsv").read_text().splitlines()[0].split("\t")[:6] == [
        "epoch",
        "step",
        "loss",
        "dev_loss",
        "dev_ter",
        "dev_empty",
    ]
    assert len(final["averaged_epochs"]) == 2


def test_sigkilled_training_resumes_from_the_saved_epoch_and_matches_an_uninterrupted_run(fsdd_features, tmp_path):
    subprocess.run(train_command(fsdd_features, tmp_path / "straight"), check=True, capture_output=True)

    killed = tmp_path / "killed"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(train_command(fsdd_features, killed), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not (killed / "epoch-2.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (killed / "epoch-2.pt").exists() and not (killed / "final.pt").exists()
    saved = max(e for e, _ in checkpoint.epoch_checkpoints(killed))
    assert saved < 4

    second = subprocess.run(train_command(fsdd_features, killed), check=True, capture_output=True, text=True)
    assert f"resuming from {killed}/epoch-{saved}.pt" in second.stderr
    assert "epoch 1:" not in second.stderr  # nothing already done was redone
    history = (killed / "history.tsv").read_text().splitlines()[1:]
    assert [int(line.split("\t")[0]) for line in history] == [1, 2, 3, 4]

    a = checkpoint.load(tmp_path / "straight/final.pt")["model"]
    b = checkpoint.load(killed / "final.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=f"{name} differs after resume")


def test_raising_max_epochs_continues_instead_of_restarting(fsdd_features, tmp_path):
    subprocess.run(train_command(fsdd_features, tmp_path, max_epochs=2), check=True, capture_output=True)
    more = subprocess.run(
        train_command(fsdd_features, tmp_path, max_epochs=3), check=True, capture_output=True, text=True
    )
    assert "resuming from" in more.stderr and "epoch 3:" in more.stderr and "epoch 1:" not in more.stderr


def test_decoding_a_trained_model(fsdd_features, tmp_path):
    subprocess.run(train_command(fsdd_features, tmp_path / "am", max_epochs=3), check=True, capture_output=True)
    recognizer = Recognizer.load(tmp_path / "am/final.pt")
    data = FeatureSet(fsdd_features / "fbank/dev", recognizer.cmvn_mode, None, recognizer.global_mean_std)
    from speechrecipe.dataset import collate

    feats, lengths, _, _ = collate(data.utterances)
    greedy = recognizer.decode_ids(feats, lengths)
    beam = recognizer.decode_ids(feats, lengths, BeamSearch(recognizer.tokenizer.pieces, beam_size=1))
    # A beam of one is the best path.
    assert greedy == beam
    for config in ('{"method": "greedy"}', '{"method": "beam", "beam_size": 4}'):
        hyp = tmp_path / "hyp.txt"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "workflow/scripts/decode.py"),
                str(tmp_path / "am/final.pt"),
                str(fsdd_features / "fbank/dev"),
                str(hyp),
                "--config",
                config,
            ],
            check=True,
            capture_output=True,
        )
        lines = hyp.read_text().splitlines()
        assert [line.split()[0] for line in lines] == sorted(u.utt for u in data.utterances)
