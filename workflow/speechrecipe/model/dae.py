"""The denoising autoencoder (DAE): the acoustic model's lower layers plus a decoder to clean features.

The DAE reads the normalized features of a noisy utterance and predicts the
normalized features of the same utterance without noise. Its encoder *is* the
acoustic model's front end and lower LSTM layers (:class:`~speechrecipe.model.network.LSTMEncoder`
with ``layers`` of the acoustic model's ``layers``, same names and shapes), so
``am.init: dae`` copies it into the acoustic model tensor by tensor
(:mod:`speechrecipe.model.pretrained`). A linear decoder maps each encoder frame
back to the clean frames it covers: with the ``stack`` front end, one encoder
frame stands for ``subsampling_factor`` input frames, and the target is those
clean frames side by side (the context frames of the reconstruction); the
bidirectional LSTM sees the whole utterance. It is trained as a task of the one
training loop (:mod:`speechrecipe.dae_task`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .network import LSTMEncoder


class DenoisingAutoencoder(nn.Module):
    """The acoustic model's lower ``layers`` LSTM layers (and front end) plus a linear decoder to clean frames."""

    def __init__(self, am_config: ModelConfig, layers: int):
        super().__init__()
        if not 1 <= layers <= am_config.layers:
            raise ValueError(
                f"the DAE has {layers} layers; it must have 1 to {am_config.layers} (the acoustic "
                "model's layers, which it initializes)"
            )
        if am_config.subsampling == "conv2d":
            raise ValueError("the DAE reconstructs stacked frames: use subsampling 'stack' or 'none'")
        self.config = am_config.replace(layers=layers)
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

    def min_input_frames(self) -> int:
        """One encoder frame at least."""
        return self.factor


def reconstruction_error(
    model: DenoisingAutoencoder, predicted: torch.Tensor, out_lengths: torch.Tensor, clean: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Summed squared error over the real (unpadded) output frames of a batch, and the values it covers."""
    target = model.stacked_targets(clean, predicted.shape[1])
    mask = (torch.arange(predicted.shape[1], device=predicted.device)[None, :] < out_lengths[:, None]).unsqueeze(-1)
    # Frames of the last (partial) group beyond an utterance's end are zeros in both noisy and clean
    # input padding: they count like real frames, which is harmless and keeps the loss simple.
    error = ((predicted.float() - target) ** 2) * mask
    return error.sum(), int(mask.sum()) * predicted.shape[-1]


def reconstruction_loss(model: DenoisingAutoencoder, noisy, clean, lengths) -> tuple[torch.Tensor, int]:
    """:func:`reconstruction_error` of the DAE's prediction for ``noisy``."""
    predicted, out_lengths = model(noisy, lengths)
    return reconstruction_error(model, predicted, out_lengths, clean)
