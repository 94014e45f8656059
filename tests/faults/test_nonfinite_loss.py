"""A NaN or infinite loss skips its batch and is counted; more than max_bad_batches in an epoch stops training
with a message that names the utterances involved. Real FSDD features, two of them made non-finite (what a
recording with NaN samples, or an fp16 overflow, gives)."""

import logging

import numpy as np
import pytest
import torch

from speechrecipe.batching import bucket_batches
from speechrecipe.config import AMTrainConfig, ModelConfig
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import FeatureSet
from speechrecipe.model import CTCModel
from speechrecipe.tokens import Tokenizer
from speechrecipe.trainer import NonFiniteLossError, train

MODEL = {"hidden": 32, "layers": 1, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.0}
TRAIN = {
    "max_epochs": 2,
    "batch_frames": 3000,
    "lr": 0.003,
    "warmup_steps": 5,
    "average_best": 1,
    "seed": 5,
    "specaug": {"freq_masks": 0, "time_masks": 0},
}


@pytest.fixture(scope="module")
def poisoned(fsdd_features):
    """(train set with two utterances of NaN/inf features, dev set, tokenizer, their ids)."""
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    train_set = FeatureSet(fsdd_features / "fbank/train", "utterance", tok, in_memory=True)  # poisoned below
    dev_set = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)
    # Not the first of their (length-sorted) batches, so a message naming batches by their first
    # utterances would miss them.
    batches = bucket_batches([len(u.feats) for u in train_set.utterances], TRAIN["batch_frames"])
    big = [b for b in batches if len(b) >= 4]
    bad = [train_set.utterances[big[0][-1]], train_set.utterances[big[1][-1]]]
    bad[0].feats = bad[0].feats.copy()
    bad[0].feats[5] = np.nan
    bad[1].feats = bad[1].feats.copy()
    bad[1].feats[:, 3] = np.inf
    return train_set, dev_set, tok, [u.utt for u in bad]


def model_for(tok):
    torch.manual_seed(0)
    return CTCModel(ModelConfig(input_dim=40, vocab_size=tok.vocab_size, **MODEL))


def train_poisoned(poisoned, exp_dir, max_bad_batches: int) -> dict:
    train_set, dev_set, tok, _ = poisoned
    config = AMTrainConfig.from_dict({**TRAIN, "max_bad_batches": max_bad_batches})
    return train(
        CTCTask(model_for(tok), train_set, dev_set), exp_dir, config, "hash", device=torch.device("cpu"), progress=False
    )


def test_batches_with_a_nonfinite_loss_are_skipped_and_counted(poisoned, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="speechrecipe.trainer")
    final = train_poisoned(poisoned, tmp_path, max_bad_batches=2)
    assert [h["skipped_batches"] for h in final["history"]] == [2, 2]
    header, *rows = (tmp_path / "history.tsv").read_text().splitlines()
    column = header.split("\t").index("skipped_batches")
    assert [row.split("\t")[column] for row in rows] == ["2", "2"]
    assert "skipped 2 batch(es) with a non-finite loss" in caplog.text
    # The skipped batches never reached the weights.
    assert all(torch.isfinite(t).all() for t in final["model"].values())
    assert all(np.isfinite(h["loss"]) for h in final["history"])


def test_more_bad_batches_than_allowed_stop_training_naming_the_utterances(poisoned, tmp_path):
    bad = poisoned[3]
    with pytest.raises(NonFiniteLossError) as info:
        train_poisoned(poisoned, tmp_path, max_bad_batches=1)
    message = str(info.value)
    assert "epoch 1: 2 batches gave a non-finite loss (more than max_bad_batches=1)" in message
    assert "utterances involved" in message
    for utt in bad:
        assert utt in message, f"{utt} (non-finite features) is not named: {message}"
    assert not (tmp_path / "epoch-1.pt").exists(), "an epoch with too many bad batches was saved"
