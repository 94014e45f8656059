"""Checkpoints and bundles are loaded with weights_only=True: a crafted pickle is refused, never run."""

import ast
import subprocess
import sys

import pytest
import torch

from speechrecipe import checkpoint
from speechrecipe.config import AMTrainConfig, ModelConfig
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import FeatureSet
from speechrecipe.model import CTCModel
from speechrecipe.tokens import Tokenizer
from speechrecipe.trainer import train

from .lib import ROOT


class Payload:
    """Unpickling this opens (so creates) a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_every_torch_load_in_the_recipe_passes_weights_only_true():
    calls = []
    for path in [*(ROOT / "workflow").rglob("*.py"), *(ROOT / "local").glob("*.py"), *(ROOT / "bench").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", safe))
    assert calls, "no torch.load found: the scan is broken"
    assert [where for where, safe in calls if not safe] == []


def test_a_crafted_epoch_checkpoint_is_refused_and_training_starts_clean(fsdd_features, tmp_path, caplog):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "epoch": 3, "config_hash": "h", "payload": Payload(marker)}, tmp_path / "epoch-3.pt")
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    train_set = FeatureSet(fsdd_features / "fbank/train", "utterance", tok)
    dev_set = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=40, vocab_size=tok.vocab_size, hidden=16, layers=1, subsampling_factor=2))
    caplog.set_level("INFO")
    final = train(
        CTCTask(model, train_set, dev_set),
        tmp_path,
        AMTrainConfig.from_dict({"max_epochs": 1, "batch_frames": 3000}),
        "h",
        device=torch.device("cpu"),
        progress=False,
    )
    assert not marker.exists(), "the crafted checkpoint's code ran"
    assert "skipping unreadable checkpoint" in caplog.text and "epoch-3.pt" in caplog.text
    assert "resuming" not in caplog.text and [h["epoch"] for h in final["history"]] == [1]


def test_a_crafted_final_pt_is_refused_by_decoding(fsdd_features, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "model_config": {}, "payload": Payload(marker)}, tmp_path / "final.pt")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "final.pt")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "workflow/scripts/decode.py"),
            str(tmp_path / "final.pt"),
            str(fsdd_features / "fbank/dev"),
            str(tmp_path / "hyp.txt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "not a loadable checkpoint" in result.stderr
    assert not marker.exists() and not (tmp_path / "hyp.txt").exists()
