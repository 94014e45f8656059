"""A trained acoustic model ready to use: network, tokenizer, normalization and feature config.

Built from a ``final.pt``-shaped dict (:mod:`speechrecipe.model.files`), so it loads the
same from an experiment directory, a ``final.pt`` or a bundle (:meth:`Recognizer.load`).
It turns normalized features into CTC log-probabilities; :mod:`speechrecipe.decoding`
searches them, :mod:`speechrecipe.transcriber` goes from audio to text.
"""

from __future__ import annotations

import torch

from .cmvn import stats_to_mean_std
from .config import FeatureConfig, ModelConfig
from .decoding import greedy_ids
from .model.files import load_final
from .model.network import CTCModel
from .model.quantize import quantize_int8
from .tokens import Tokenizer


class Recognizer:
    """A trained model ready to decode, from one ``final.pt``-shaped dict."""

    def __init__(self, final: dict, device: str = "cpu", quantize: bool = False):
        self.final = final
        self.model = CTCModel(ModelConfig.from_dict(final["model_config"]))
        self.model.load_state_dict(final["model"])
        self.model.eval().to(device)
        self.device = device
        # int8: asked for here, or recorded in an int8 bundle (speechrecipe.model.quantize).
        self.quantization = "int8" if quantize else final.get("quantization")
        if self.quantization == "int8":
            if device != "cpu":
                raise ValueError("an int8 (dynamically quantized) model runs on the CPU only: use --device cpu")
            self.model = quantize_int8(self.model)
        self.tokenizer = Tokenizer(bytes(final["tokenizer"]))
        self.cmvn_mode = final["cmvn"]["mode"]
        self.global_stats = final["cmvn"]["global_stats"]
        self.global_mean_std = stats_to_mean_std(self.global_stats.numpy())
        self.feature_config = FeatureConfig.from_dict(final["feature_config"])

    @classmethod
    def load(cls, path, device: str = "cpu", quantize: bool = False) -> Recognizer:
        """From an experiment directory (``exp/<tag>``), its ``am`` directory, a ``final.pt`` or a bundle;
        ``quantize``: with int8 LSTM and linear layers."""
        return cls(load_final(path), device, quantize)

    @property
    def frame_seconds(self) -> float:
        """Seconds per model output frame (feature frame shift times the subsampling factor)."""
        return self.feature_config.frame_shift_ms / 1000 * self.model.subsampling_factor

    def log_probs(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities (batch, frames, vocab) and output lengths, on the CPU, of normalized features."""
        with torch.no_grad():
            log_probs, out_lengths = self.model(feats.to(self.device), lengths.to(self.device))
        return log_probs.cpu(), out_lengths.cpu()

    def decode_ids(self, feats: torch.Tensor, lengths: torch.Tensor, search=None) -> list[list[int]]:
        """Token ids of each utterance: ``search`` (a :class:`~speechrecipe.decoding.BeamSearch`) or greedy."""
        log_probs, out_lengths = self.log_probs(feats, lengths)
        return search(log_probs, out_lengths) if search else greedy_ids(log_probs, out_lengths)
