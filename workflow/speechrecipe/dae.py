"""Denoising-autoencoder (DAE) pretraining of the acoustic model's lower layers.

The DAE reads the normalized features of a noisy utterance and predicts the
normalized features of the same utterance without noise. Its encoder *is* the
acoustic model's front end and lower LSTM layers (:class:`~speechrecipe.model.LSTMEncoder`
with ``layers`` of the acoustic model's ``layers``, same names and shapes), so
``am.init: dae`` copies it into the acoustic model tensor by tensor. A linear
decoder maps each encoder frame back to the clean frames it covers: with the
``stack`` front end, one encoder frame stands for ``subsampling_factor`` input
frames, and the target is those clean frames side by side (the context frames
of the reconstruction); the bidirectional LSTM sees the whole utterance.

Its training loop is :mod:`speechrecipe.dae_training`; this module is what
decoding needs too (:func:`load`, :meth:`DenoisingAutoencoder.enhance`), and
reaches no CUDA code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .dataset import FeatureSet
from .model import CTCModel, LSTMEncoder, ModelConfig

log = logging.getLogger(__name__)


class DenoisingAutoencoder(nn.Module):
    """The acoustic model's lower ``layers`` LSTM layers (and front end) plus a linear decoder to clean frames."""

    def __init__(self, am_config: ModelConfig, layers: int):
        super().__init__()
        if not 1 <= layers <= am_config.layers:
            raise ValueError(f"the DAE has {layers} layers; it must have 1 to {am_config.layers} (the acoustic "
                             "model's layers, which it initializes)")
        if am_config.subsampling == "conv2d":
            raise ValueError("the DAE reconstructs stacked frames: use subsampling 'stack' or 'none'")
        self.config = replace(am_config, layers=layers)
        self.encoder = LSTMEncoder(self.config)
        self.factor = 1 if am_config.subsampling == "none" else am_config.subsampling_factor
        self.decoder = nn.Linear(self.encoder.output_dim, am_config.input_dim * self.factor)

    def forward(self, noisy: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted clean frames, stacked like the encoder's input ``(batch, frames', dim * factor)``, and lengths."""
        x, out_lengths = self.encoder(noisy, lengths)
        return self.decoder(x), out_lengths

    def stacked_targets(self, clean: torch.Tensor, out_frames: int) -> torch.Tensor:
        """The clean frames grouped like the encoder's front end groups its input."""
        b, t, d = clean.shape
        clean = nn.functional.pad(clean, (0, 0, 0, (-t) % self.factor))
        return clean.reshape(b, -1, d * self.factor)[:, :out_frames]

    def enhance(self, noisy: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Clean-feature estimates at the input frame rate ``(batch, frames, dim)`` (for decoding)."""
        predicted, _ = self(noisy, lengths)
        b, t, _ = predicted.shape
        return predicted.reshape(b, t * self.factor, -1)[:, : noisy.shape[1]]


def reconstruction_loss(model: DenoisingAutoencoder, noisy, clean, lengths) -> tuple[torch.Tensor, int]:
    """Summed squared error over the real (unpadded) output frames of a batch, and the values it covers."""
    predicted, out_lengths = model(noisy, lengths)
    target = model.stacked_targets(clean, predicted.shape[1])
    mask = (torch.arange(predicted.shape[1], device=predicted.device)[None, :] < out_lengths[:, None]).unsqueeze(-1)
    # Frames of the last (partial) group beyond an utterance's end are zeros in both noisy and clean
    # input padding: they count like real frames, which is harmless and keeps the loss simple.
    error = ((predicted - target) ** 2) * mask
    return error.sum(), int(mask.sum()) * predicted.shape[-1]


@dataclass
class ParallelUtterance:
    utt: str
    noisy: np.ndarray
    clean: np.ndarray


def parallel_set(noisy: FeatureSet, clean: FeatureSet) -> list[ParallelUtterance]:
    """(noisy, clean) feature pairs by utterance id; a pair whose frame counts differ is dropped with a warning."""
    clean_by_id = {u.utt: u.feats for u in clean.utterances}
    pairs, unmatched = [], []
    for u in noisy.utterances:
        target = clean_by_id.get(u.utt)
        if target is None or len(target) != len(u.feats):
            unmatched.append(u.utt)
            continue
        pairs.append(ParallelUtterance(u.utt, u.feats, target))
    if unmatched:
        log.warning("%s: %d noisy utterance(s) without a clean twin of the same length in %s (e.g. %s)",
                    noisy.feat_dir, len(unmatched), clean.feat_dir, ", ".join(unmatched[:3]))
    if not pairs:
        raise ValueError(f"{noisy.feat_dir} and {clean.feat_dir} share no utterance: the DAE needs a noisy copy "
                         "of the clean set (same utterance ids)")
    return pairs


def collate_pairs(pairs: list[ParallelUtterance]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(p.noisy) for p in pairs])
    dim = pairs[0].noisy.shape[1]
    noisy = torch.zeros(len(pairs), int(lengths.max()), dim)
    clean = torch.zeros_like(noisy)
    for i, p in enumerate(pairs):
        noisy[i, : len(p.noisy)] = torch.from_numpy(p.noisy)
        clean[i, : len(p.clean)] = torch.from_numpy(p.clean)
    return noisy, clean, lengths


def load(path: str | Path) -> DenoisingAutoencoder:
    """A trained DAE from its ``final.pt``."""
    final = checkpoint.load(path)
    if final.get("kind") != "dae":
        raise checkpoint.CheckpointError(f"{path} is not a denoising autoencoder's final.pt")
    config = ModelConfig.from_dict(final["model_config"])
    model = DenoisingAutoencoder(config, config.layers)
    model.load_state_dict(final["model"])
    return model.eval()


def initialize_from_dae(model: CTCModel, dae_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy the DAE's encoder (front end and LSTM layers) into the acoustic model; returns the names copied.

    The DAE's encoder tensors have the acoustic model's names (``encoder.layers.0....``), so this is
    a copy by name; a shape that differs is an error (the DAE was trained for another model).
    """
    own = model.state_dict()
    copied = []
    for name, tensor in dae_state.items():
        if not name.startswith("encoder."):
            continue
        if name not in own or own[name].shape != tensor.shape:
            shape = tuple(own[name].shape) if name in own else "missing"
            raise ValueError(f"DAE tensor {name} {tuple(tensor.shape)} does not fit the acoustic model ({shape}): "
                             "the DAE was trained for another am.model; re-run its training")
        own[name] = tensor.to(own[name].dtype)
        copied.append(name)
    model.load_state_dict(own)
    return copied
