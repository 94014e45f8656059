"""CTC decoding: greedy (best path) and beam search (torchaudio's flashlight ``ctc_decoder``)."""

from __future__ import annotations

import torch


def greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: arg-max per frame, repeats merged, blanks (id 0) removed."""
    best = log_probs.argmax(dim=-1)
    hyps = []
    for row, n in zip(best, lengths):
        ids = torch.unique_consecutive(row[: int(n)])
        hyps.append([int(i) for i in ids if int(i) != 0])
    return hyps


class BeamSearch:
    """Lexicon-free CTC prefix beam search over the tokenizer's units.

    Units are SentencePiece pieces; the text comes from decoding the best
    token sequence with the tokenizer, exactly as for greedy decoding, so the
    two methods differ only in the search.
    """

    def __init__(self, pieces: list[str], beam_size: int = 10, beam_threshold: float = 50.0):
        from torchaudio.models.decoder import ctc_decoder

        self.decoder = ctc_decoder(
            lexicon=None, tokens=pieces, lm=None, nbest=1, beam_size=beam_size,
            beam_size_token=min(len(pieces), beam_size * 4), beam_threshold=beam_threshold,
            blank_token=pieces[0], sil_token=pieces[1], unk_word=pieces[1],
        )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        results = self.decoder(log_probs.float().cpu().contiguous(), lengths.cpu().int())
        hyps = []
        for nbest in results:
            # The decoder returns the token path with repeats merged and blanks removed,
            # but framed by silence tokens (<unk> here, never emitted by training): drop those.
            hyps.append([int(t) for t in nbest[0].tokens if int(t) > 1] if nbest else [])
        return hyps


class Recognizer:
    """A trained model ready to decode: network, tokenizer and normalization from one ``final.pt``."""

    def __init__(self, path, device: str = "cpu"):
        from . import checkpoint
        from .features import stats_to_mean_std
        from .model import CTCModel, ModelConfig
        from .tokens import Tokenizer

        final = checkpoint.load(path)
        self.model = CTCModel(ModelConfig.from_dict(final["model_config"]))
        self.model.load_state_dict(final["model"])
        self.model.eval().to(device)
        self.device = device
        self.tokenizer = Tokenizer(bytes(final["tokenizer"]))
        self.cmvn_mode = final["cmvn"]["mode"]
        self.global_mean_std = stats_to_mean_std(final["cmvn"]["global_stats"].numpy())
        self.feature_config = final["feature_config"]

    def decode_ids(self, feats: torch.Tensor, lengths: torch.Tensor, search=None) -> list[list[int]]:
        with torch.no_grad():
            log_probs, out_lengths = self.model(feats.to(self.device), lengths.to(self.device))
        log_probs, out_lengths = log_probs.cpu(), out_lengths.cpu()
        return search(log_probs, out_lengths) if search else greedy_ids(log_probs, out_lengths)
