import numpy as np
import pytest
import torch

from speechrecipe import tokens
from speechrecipe.archive import matrix_writer
from speechrecipe.augment import keyed_rng, spec_augment
from speechrecipe.batching import bucket_batches, epoch_order, training_batches
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import FeatureSet
from speechrecipe.fileio import write_table
from speechrecipe.tokens import Tokenizer


def test_bucket_batches_cover_every_utterance_once_within_the_frame_budget():
    rng = np.random.default_rng(1)
    lengths = rng.integers(20, 400, 500).tolist()
    batches = bucket_batches(lengths, max_frames=3000, max_batch=64)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 3000
        assert len(b) <= 64
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert (padded - sum(lengths)) / padded < 0.1


def test_epoch_order_depends_only_on_seed_and_epoch():
    batches = [[i] for i in range(30)]
    assert epoch_order(batches, 1, 3) == epoch_order(batches, 1, 3)
    assert epoch_order(batches, 1, 3) != epoch_order(batches, 1, 4)


def test_spec_augment_masks_each_utterance_from_its_own_key():
    feats = np.ones((100, 40), dtype=np.float32)
    a = spec_augment(feats, keyed_rng(1, 3, "spk-utt1"), 2, 10, 2, 0.1)
    assert np.array_equal(a, spec_augment(feats, keyed_rng(1, 3, "spk-utt1"), 2, 10, 2, 0.1))
    assert (a == 0).any() and (a == 1).any()
    assert not np.array_equal(a, spec_augment(feats, keyed_rng(1, 4, "spk-utt1"), 2, 10, 2, 0.1))  # another epoch
    assert np.array_equal(feats, np.ones((100, 40)))  # the input is left alone
    zero_width = spec_augment(feats, keyed_rng(1, 3, "u"), 2, 10, 2, 0.0)
    assert int((zero_width == 0).all(axis=1).sum()) <= 2  # time masks of at most 1 frame


def test_the_default_frequency_mask_is_in_proportion_to_the_feature_dimension():
    for dim, widest in ((80, 15), (23, 4), (13, 2)):
        feats = np.ones((50, dim), dtype=np.float32)
        widths = []
        for seed in range(200):
            masked = spec_augment(feats, keyed_rng(seed, 1, "u"), freq_masks=1, time_masks=0)
            widths.append(int((masked == 0).all(axis=0).sum()))
        assert max(widths) == widest  # 200 draws of 0..widest see the widest


def test_training_batches_keep_enough_steps_for_a_small_corpus():
    lengths = [100] * 26  # a tiny corpus: the frame budget alone makes two batches
    assert len(bucket_batches(lengths, 2000, 128)) == 2
    batches = training_batches(lengths, 2000, 128, min_batches=20)
    assert len(batches) >= 20 and sorted(i for b in batches for i in b) == list(range(26))
    assert len(training_batches(lengths * 100, 2000, 128, min_batches=20)) == len(
        bucket_batches(lengths * 100, 2000, 128)
    )


def test_feature_set_normalizes_per_speaker(fsdd_features):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    data = FeatureSet(fsdd_features / "fbank/train", "speaker", tok)
    assert len(data) == 100 and data.dim == 40
    george = np.concatenate([u.feats for u in data.utterances if u.utt.startswith("george")])
    np.testing.assert_allclose(george.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(george.std(axis=0), 1, atol=1e-2)
    assert all(u.tokens and tok.decode(u.tokens) == u.text for u in data.utterances)


def test_a_feature_set_reads_on_demand_what_in_memory_holds(fsdd_features):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    lazy = FeatureSet(fsdd_features / "fbank/train", "speaker", tok)
    held = FeatureSet(fsdd_features / "fbank/train", "speaker", tok, in_memory=True)
    assert (
        lazy._cache is None and lazy.utts == held.utts and list(lazy.lengths) == [len(u.feats) for u in held.utterances]
    )
    for i in (0, 37, 99):
        assert lazy[i].utt == held[i].utt and np.array_equal(lazy[i].feats, held[i].feats)
        assert lazy[i].tokens == held[i].tokens == lazy.tokens(i)
    lazy.extend(FeatureSet(fsdd_features / "fbank/dev", "speaker", tok))
    assert len(lazy) == 120 and lazy[110].utt.startswith("nicolas") and lazy.tokens(110) == lazy[110].tokens


def test_feature_set_drops_utterances_too_short_for_their_transcript(fsdd_features, caplog):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    full = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)
    # Output frames each utterance can afford per token; subsampling by the median leaves the lower half short.
    capacity = sorted(len(u.feats) // len(u.tokens) for u in full.utterances)
    kept = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok, subsampling_factor=capacity[10] + 1)
    assert 0 < len(kept) < 20
    assert "too short" in caplog.text


def test_an_empty_transcript_is_kept_and_trains_ctc_towards_blanks(tmp_path):
    """Kaldi data dirs may hold empty transcripts (validation accepts them, as Kaldi does): the tokenizer trains
    on such text, FeatureSet keeps the utterance with no targets, and its CTC loss is that of all blanks."""
    texts = {"spk-1": "ONE TWO", "spk-2": "", "spk-3": "THREE"}
    tokenizer = tokens.train(list(texts.values()), tmp_path / "tokens" / "sp.model", "char", 30)
    feat_dir = tmp_path / "fbank"
    rng = np.random.default_rng(0)
    with matrix_writer(feat_dir / "feats.ark", feat_dir / "feats.scp") as write:
        for utt in texts:
            write(utt, rng.standard_normal((40, 8)).astype(np.float32))
    write_table(feat_dir / "text", texts)
    write_table(feat_dir / "utt2spk", {utt: "spk" for utt in texts})
    write_table(feat_dir / "utt2num_frames", dict.fromkeys(texts, "40"))
    data = FeatureSet(feat_dir, "utterance", tokenizer)
    assert [(u.utt, u.text, bool(u.tokens)) for u in data.utterances] == [
        ("spk-1", "ONE TWO", True),
        ("spk-2", "", False),
        ("spk-3", "THREE", True),
    ]
    task = CTCTask(None, data, data)  # batches and loss only: no network needed
    log_probs = torch.randn(3, 40, tokenizer.vocab_size, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    whole = task.loss((log_probs, torch.full((3,), 40)), task.batch_maker.make([(0,), (1,), (2,)], 1, 0, 1), "cpu")
    assert torch.isfinite(whole)
    alone = task.loss((log_probs[1:2], torch.full((1,), 40)), task.batch_maker.make([(1,)], 1, 0, 1), "cpu")
    assert alone.item() == pytest.approx(-log_probs[1, :, 0].sum().item(), rel=1e-5)  # blank (id 0) throughout
