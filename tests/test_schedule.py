"""The schedule in steps (a small corpus still trains to its minimum length, no early stop during warm-up) and
the data rules (joined examples for short utterances, a corpus too small to train told so)."""

import numpy as np
import torch

from speechrecipe.config import AMTrainConfig, ConcatConfig, ModelConfig
from speechrecipe.ctc_task import CTCBatches, CTCTask, join_examples
from speechrecipe.dataset import FeatureSet, trainability_problems
from speechrecipe.model import CTCModel
from speechrecipe.schedule import should_stop, training_warnings
from speechrecipe.tokens import Tokenizer
from speechrecipe.trainer import epoch_plan, train


def rows(*dev_losses, every=10):
    return [
        {"epoch": i + 1, "step": every * (i + 1), "dev_loss": loss, "dev_ter": 0.5} for i, loss in enumerate(dev_losses)
    ]


def test_early_stopping_never_fires_during_warm_up_or_before_the_minimum():
    history = rows(5.0, 6.0, 7.0, 8.0, 9.0)  # the best check is the first, 40 steps ago
    assert should_stop(history, patience_steps=20)
    assert not should_stop(history, patience_steps=20, min_step=100)  # still warming up (or under min_steps)
    assert not should_stop(history, patience_steps=0)
    assert should_stop(
        history + rows(9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, every=10)[5:],
        patience_steps=20,
        min_step=100,
    )


def test_a_20_utterance_corpus_trains_its_minimum_steps(fsdd_features, tmp_path):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    dev = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)  # 20 utterances of one speaker
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=40, vocab_size=tok.vocab_size, hidden=16, layers=1, subsampling_factor=2))
    # The frame budget alone would make 2 batches per epoch, and 5 epochs 10 steps.
    config = AMTrainConfig.from_dict(
        {
            "max_epochs": 5,
            "min_steps": 55,
            "batch_frames": 1000,
            "min_batches_per_epoch": 10,
            "warmup_steps": 30,
            "patience_steps": 5,
            "specaug": {"freq_masks": 0, "time_masks": 0},
        }
    )
    assert len(epoch_plan(CTCBatches(dev, config.specaug, 1), 1, config)) == 10
    final = train(CTCTask(model, dev, dev), tmp_path, config, "h", device=torch.device("cpu"), progress=False)
    steps = [h["step"] for h in final["history"]]
    # 6 whole epochs of 10 steps: more than max_epochs, to reach min_steps, and the epoch that reached it finished
    # with its dev check (the last steps are measured, and can be averaged)
    assert steps[-1] == 60 and len(steps) == 6
    assert (tmp_path / "history.tsv").read_text().splitlines()[0].startswith("epoch\tstep\t")


def test_joined_examples_cover_every_utterance_once_within_a_speaker():
    speakers = ["a"] * 30 + ["b"] * 25 + ["c"]
    lengths = np.full(56, 50)
    concat = ConcatConfig(mode="on", probability=0.5, max_utterances=4, max_frames=160)
    examples = join_examples(speakers, lengths, concat, np.random.default_rng([1, 2]))
    assert sorted(i for e in examples for i in e) == list(range(56))
    assert all(len({speakers[i] for i in e}) == 1 for e in examples)
    assert any(len(e) > 1 for e in examples) and all(len(e) <= 3 for e in examples)  # 160 frames: 3 of 50 at most
    assert examples == join_examples(speakers, lengths, concat, np.random.default_rng([1, 2]))
    assert examples != join_examples(speakers, lengths, concat, np.random.default_rng([1, 3]))


def test_joined_utterances_make_one_example_with_pauses(fsdd_features):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    data = FeatureSet(fsdd_features / "fbank/dev", "speaker", tok)
    maker = CTCBatches(
        data,
        AMTrainConfig().specaug.replace(freq_masks=0, time_masks=0),
        7,
        ConcatConfig(mode="on", probability=1.0, max_utterances=2, pause_ms=[100, 100]),
    )
    examples, lengths = maker.examples(1)
    joined = next(e for e in examples if len(e) == 2)
    example = maker.example(joined, 1)
    first, second = data[joined[0]], data[joined[1]]
    assert len(example.feats) == len(first.feats) + 10 + len(second.feats) == lengths[examples.index(joined)]
    assert np.array_equal(example.feats[: len(first.feats)], first.feats)
    assert example.tokens == first.tokens + second.tokens and example.text == f"{first.text} {second.text}"
    assert np.array_equal(example.feats[len(first.feats)], first.feats[np.argmin(first.feats.sum(axis=1))])


def test_concat_auto_is_on_for_short_utterances_only():
    auto = ConcatConfig()
    assert auto.resolved(0.5).probability == 0.5 and auto.resolved(0.5).mode == "on"
    assert auto.resolved(4.0).probability == 0.0
    assert ConcatConfig(mode="on").resolved(9.0).probability == 0.5
    assert ConcatConfig(mode="off").resolved(0.1).probability == 0.0


def test_a_corpus_too_small_or_too_short_for_the_subsampling_is_told_so(fsdd_features):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    fine = FeatureSet(fsdd_features / "fbank/train", "utterance", tok)
    assert trainability_problems(fine, 2, 10.0) == []
    # Subsampled so much that most utterances cannot hold their transcripts.
    capacity = sorted(int(fine.lengths[i]) // max(len(fine.tokens(i)), 1) for i in range(len(fine)))
    squeezed = FeatureSet(fsdd_features / "fbank/train", "utterance", tok, subsampling_factor=capacity[70] + 1)
    problem = trainability_problems(squeezed, capacity[70] + 1, 10.0)[0]
    assert "too short for their transcripts" in problem and "subsampling_factor: 2" in problem
    tiny = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)
    tiny.utts, tiny.lengths = tiny.utts[:5], tiny.lengths[:5]
    (problem,) = trainability_problems(tiny, 2, 10.0)
    assert "5 usable utterance(s)" in problem and "too little to train" in problem and "Fix:" in problem
    assert trainability_problems(tiny, 2, 10.0, from_scratch=False) == []  # fine-tuning a trained model may


def test_warnings_when_training_never_left_the_all_blank_phase_or_had_not_converged():
    blank = [{**r, "dev_empty": 1.0} for r in rows(9.0, 8.9, 8.9)]
    assert any("still all blank" in w for w in training_warnings(blank))
    falling = rows(9.0, 8.0, 7.0, 6.0, 4.0)
    assert any("still falling fast" in w for w in training_warnings(falling))
    assert training_warnings(rows(9.0, 3.0, 2.0, 2.0, 2.0)) == []
    # a large relative fall that is a negligible part of the run's whole fall has converged
    assert training_warnings(rows(5.0, 0.02, 0.0013, 0.0011, 0.0008)) == []
    # nor has an overfitting run whose dev loss rose and wobbles (its best check came early)
    assert training_warnings(rows(8.0, 7.8, 8.5, 9.9, 10.9, 9.7, 11.2)) == []
