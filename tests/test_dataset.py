import numpy as np
import torch

from speechrecipe.augment import spec_augment
from speechrecipe.batching import bucket_batches, epoch_order
from speechrecipe.dataset import FeatureSet
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


def test_spec_augment_masks_within_lengths_and_is_seeded():
    feats = torch.ones(2, 100, 40)
    lengths = torch.tensor([100, 50])
    a = spec_augment(feats, lengths, torch.Generator().manual_seed(0), 2, 10, 2, 0.1)
    b = spec_augment(feats, lengths, torch.Generator().manual_seed(0), 2, 10, 2, 0.1)
    assert torch.equal(a, b)
    assert (a == 0).any() and (a == 1).any()
    assert torch.equal(feats, torch.ones(2, 100, 40))  # the input is left alone


def test_feature_set_normalizes_per_speaker(fsdd_features):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    data = FeatureSet(fsdd_features / "fbank/train", "speaker", tok)
    assert len(data) == 100 and data.dim == 40
    george = np.concatenate([u.feats for u in data.utterances if u.utt.startswith("george")])
    np.testing.assert_allclose(george.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(george.std(axis=0), 1, atol=1e-2)
    assert all(u.tokens and tok.decode(u.tokens) == u.text for u in data.utterances)


def test_feature_set_drops_utterances_too_short_for_their_transcript(fsdd_features, caplog):
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    full = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok)
    # Output frames each utterance can afford per token; subsampling by the median leaves the lower half short.
    capacity = sorted(len(u.feats) // len(u.tokens) for u in full.utterances)
    kept = FeatureSet(fsdd_features / "fbank/dev", "utterance", tok, subsampling_factor=capacity[10] + 1)
    assert 0 < len(kept) < 20
    assert "too short" in caplog.text
