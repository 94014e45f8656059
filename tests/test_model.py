import pytest
import torch

from speechrecipe.config import ModelConfig
from speechrecipe.model import CTCModel


@pytest.mark.parametrize("subsampling,factor", [("stack", 3), ("conv2d", 4), ("conv2d", 2), ("none", 1)])
def test_output_shape_and_lengths(subsampling, factor):
    config = ModelConfig(
        input_dim=40, vocab_size=12, hidden=16, layers=2, subsampling=subsampling, subsampling_factor=factor
    )
    model = CTCModel(config).eval()
    feats = torch.randn(3, 101, 40)
    lengths = torch.tensor([101, 60, 30])
    log_probs, out_lengths = model(feats, lengths)
    assert log_probs.shape[0] == 3 and log_probs.shape[2] == 12
    assert log_probs.shape[1] == int(out_lengths.max())
    # Each output length is about input/factor.
    for n_in, n_out in zip(lengths.tolist(), out_lengths.tolist()):
        assert abs(n_out - n_in / factor) <= 2
    # Rows are log-probabilities.
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_does_not_change_an_utterances_output(bidirectional):
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=8, vocab_size=5, hidden=8, layers=2, bidirectional=bidirectional)).eval()
    x = torch.randn(1, 40, 8)
    alone, n = model(x, torch.tensor([40]))
    padded, _ = model(torch.cat([x, torch.zeros(1, 20, 8)], dim=1), torch.tensor([40]))
    torch.testing.assert_close(alone[0, : int(n)], padded[0, : int(n)])


def test_lower_layers_are_separate_modules():
    model = CTCModel(ModelConfig(input_dim=8, vocab_size=5, hidden=8, layers=3))
    assert len(model.encoder.layers) == 3
    assert all(isinstance(layer.forward_lstm, torch.nn.LSTM) for layer in model.encoder.layers)


def test_reverse_within_lengths_keeps_padding_in_place():
    from speechrecipe.model.network import reverse_within_lengths

    x = torch.tensor([[1, 2, 3, 0], [1, 2, 3, 4]]).unsqueeze(-1)
    out = reverse_within_lengths(x, torch.tensor([3, 4])).squeeze(-1)
    assert out.tolist() == [[3, 2, 1, 0], [4, 3, 2, 1]]


def test_initialize_from_copies_the_encoder_and_maps_output_units_by_token():
    from speechrecipe.model.pretrained import initialize_from

    torch.manual_seed(0)
    pretrained = CTCModel(ModelConfig(input_dim=8, vocab_size=4, hidden=8, layers=2))
    model = CTCModel(ModelConfig(input_dim=8, vocab_size=5, hidden=8, layers=2))
    old_pieces = ["<blank>", "<unk>", "\u2581ONE", "\u2581TWO"]
    new_pieces = ["<blank>", "<unk>", "\u2581TWO", "\u2581NEW", "\u2581ONE"]
    report = initialize_from(model, pretrained.state_dict(), new_pieces, old_pieces)
    for name, tensor in pretrained.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    w_old, w_new = pretrained.output.weight, model.output.weight
    assert torch.equal(w_new[2], w_old[3]) and torch.equal(w_new[4], w_old[2]) and torch.equal(w_new[0], w_old[0])
    assert not torch.equal(w_new[3], w_old[1])  # a unit the pretrained model lacks keeps its own init
    assert report["mapped"] and not report["skipped"]
