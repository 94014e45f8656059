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
    """A trained model ready to decode: network, tokenizer and normalization from one ``final.pt``.

    ``Recognizer(path)`` loads ``exp/<tag>/am/final.pt``; :meth:`from_bundle` loads an exported
    bundle (``speechrecipe.export``) and :meth:`from_checkpoint` a ``final.pt``-shaped dict.
    """

    def __init__(self, path, device: str = "cpu"):
        from . import checkpoint

        self._setup(checkpoint.load(path), device)

    @classmethod
    def from_checkpoint(cls, final: dict, device: str = "cpu") -> "Recognizer":
        """From a dict with the keys of ``final.pt`` (model, model_config, tokenizer, cmvn, feature_config)."""
        recognizer = cls.__new__(cls)
        recognizer._setup(final, device)
        return recognizer

    @classmethod
    def from_bundle(cls, bundle_dir, device: str = "cpu") -> "Recognizer":
        """From a model bundle written by ``speechrecipe.export.write_bundle`` (checked against its manifest)."""
        from .export import read_bundle

        return cls.from_checkpoint(read_bundle(bundle_dir), device)

    def _setup(self, final: dict, device: str) -> None:
        from .features import stats_to_mean_std
        from .model import CTCModel, ModelConfig
        from .tokens import Tokenizer

        self.model = CTCModel(ModelConfig.from_dict(final["model_config"]))
        self.model.load_state_dict(final["model"])
        self.model.eval().to(device)
        self.device = device
        self.tokenizer = Tokenizer(bytes(final["tokenizer"]))
        self.cmvn_mode = final["cmvn"]["mode"]
        self.global_stats = final["cmvn"]["global_stats"]
        self.global_mean_std = stats_to_mean_std(self.global_stats.numpy())
        self.feature_config = final["feature_config"]

    @property
    def frame_seconds(self) -> float:
        """Seconds per model output frame (feature frame shift times the subsampling factor)."""
        return self.feature_config.get("frame_shift_ms", 10.0) / 1000 * self.model.subsampling_factor

    def log_probs(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities (batch, frames, vocab) and output lengths, on the CPU, of normalized features."""
        with torch.no_grad():
            log_probs, out_lengths = self.model(feats.to(self.device), lengths.to(self.device))
        return log_probs.cpu(), out_lengths.cpu()

    def decode_ids(self, feats: torch.Tensor, lengths: torch.Tensor, search=None) -> list[list[int]]:
        log_probs, out_lengths = self.log_probs(feats, lengths)
        return search(log_probs, out_lengths) if search else greedy_ids(log_probs, out_lengths)
