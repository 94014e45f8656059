"""The acoustic model: subsampling front end, stacked LSTM encoder, CTC output layer.

The LSTM layers are separate modules (``encoder.layers[i]``) rather than one
multi-layer ``nn.LSTM`` so that the lower layers can be initialized from a
pretrained encoder of the same shape (the denoising autoencoder's) and frozen
on their own; each is still a cuDNN LSTM on the GPU.

A unidirectional model also runs as a stream (:meth:`CTCModel.step`): the LSTM states are
carried from one chunk of frames to the next, so every chunk costs the same and the outputs are
those of the whole utterance in one call (:mod:`speechrecipe.streaming` feeds it live audio).

Padded batches are handled without ``pack_padded_sequence``: on the CPU its
backward pass is 5-30 times slower than a plain LSTM call. The forward
direction never sees the padding (it comes after the last real frame); the
backward direction runs over each utterance reversed *within its own length*,
so its padding also comes last. Outputs at real frames are therefore exactly
those of the utterance alone.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..config import ModelConfig
from ..datadir import hours_of

log = logging.getLogger(__name__)


class FrameStacking(nn.Module):
    """Concatenate ``factor`` consecutive frames into one (the last partial group is padded)."""

    def __init__(self, input_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.output_dim = input_dim * factor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        b, t, d = x.shape
        pad = (-t) % self.factor
        # Padded unconditionally (a zero pad is a no-op) so that a traced export keeps the step for every length.
        x = nn.functional.pad(x, (0, 0, 0, pad))
        x = x.reshape(b, (t + pad) // self.factor, d * self.factor)
        return x, torch.div(lengths + self.factor - 1, self.factor, rounding_mode="floor")


class Conv2dSubsampling(nn.Module):
    """Two (or one) stride-2 3x3 convolutions over time and frequency, as in ESPnet's Conv2dSubsampling."""

    def __init__(self, input_dim: int, factor: int, channels: int = 32):
        super().__init__()
        if factor not in (2, 4):
            raise ValueError("conv2d subsampling supports a factor of 2 or 4")
        blocks, freq = [], input_dim
        for i in range(factor // 2):
            blocks += [nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=2), nn.ReLU()]
            freq = (freq - 1) // 2
        self.conv = nn.Sequential(*blocks)
        self.n_convs = factor // 2
        self.output_dim = channels * freq

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = self.conv(x.unsqueeze(1))  # (b, c, t', f')
        b, c, t, f = x.shape
        x = x.transpose(1, 2).reshape(b, t, c * f)
        for _ in range(self.n_convs):
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor")
        return x, lengths.clamp(min=1)


class Identity(nn.Module):
    def __init__(self, input_dim: int):
        super().__init__()
        self.output_dim = input_dim

    def forward(self, x, lengths):
        return x, lengths


def make_subsampling(config: ModelConfig) -> nn.Module:
    if config.subsampling == "stack":
        return FrameStacking(config.input_dim, config.subsampling_factor)
    if config.subsampling == "conv2d":
        return Conv2dSubsampling(config.input_dim, config.subsampling_factor)
    if config.subsampling == "none":
        return Identity(config.input_dim)
    raise ValueError(f"unknown subsampling '{config.subsampling}' (use stack, conv2d or none)")


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a padded batch over its first ``length`` frames; padding stays in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class LSTMLayer(nn.Module):
    """One (bi)directional LSTM layer over a padded batch, exact for every utterance's real frames."""

    def __init__(self, input_dim: int, hidden: int, bidirectional: bool):
        super().__init__()
        self.forward_lstm = nn.LSTM(input_dim, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(input_dim, hidden, batch_first=True) if bidirectional else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y, _ = self.forward_lstm(x)
        if self.backward_lstm is None:
            return y
        y_backward, _ = self.backward_lstm(reverse_within_lengths(x, lengths))
        return torch.cat([y, reverse_within_lengths(y_backward, lengths)], dim=-1)

    def step(self, x: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        """The next frames ``x`` of a stream (forward direction only) from ``state`` (h, c), and the state after them."""
        return self.forward_lstm(x, state)


class LSTMEncoder(nn.Module):
    """Subsampling followed by ``layers`` LSTM layers with dropout between them."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.subsampling = make_subsampling(config)
        directions = 2 if config.bidirectional else 1
        self.layers = nn.ModuleList()
        dim = self.subsampling.output_dim
        for _ in range(config.layers):
            self.layers.append(LSTMLayer(dim, config.hidden, config.bidirectional))
            dim = config.hidden * directions
        self.dropout = nn.Dropout(config.dropout)
        self.output_dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, num_layers: int | None = None):
        x, lengths = self.subsampling(x, lengths)
        lengths = lengths.clamp(max=x.shape[1])
        x = x[:, : int(lengths.max())]
        for layer in self.layers[:num_layers]:
            x = self.dropout(layer(x, lengths))
        return x, lengths


class CTCModel(nn.Module):
    """LSTM encoder with a linear CTC output over the token vocabulary (blank = 0)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = LSTMEncoder(config)
        self.output = nn.Linear(self.encoder.output_dim, config.vocab_size)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        """Log-probabilities (batch, frames, vocab) and output lengths."""
        x, lengths = self.encoder(feats, lengths)
        return self.output(x).log_softmax(dim=-1), lengths

    @property
    def streamable(self) -> bool:
        """Whether :meth:`step` can run it: unidirectional layers over stacked (or unsubsampled) frames."""
        return not self.config.bidirectional and self.config.subsampling in ("stack", "none")

    def step(self, feats: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """Streaming inference: log-probabilities (batch, frames, vocab) of the next normalized ``feats``
        (batch, time, dim) of a stream, from the LSTM ``state`` the previous call returned (None at
        the start of an utterance), and the state after them.

        ``time`` must be a multiple of the subsampling factor, except in the last call of an
        utterance, whose incomplete stack is padded with zeros exactly as :meth:`forward` pads it.
        Fed an utterance chunk by chunk, it computes what :meth:`forward` computes in one call.
        """
        if not self.streamable:
            raise ValueError(
                "only a unidirectional model with stack (or no) subsampling can run as a stream "
                "(am.model.bidirectional: false, subsampling: stack); a bidirectional one needs the whole "
                "utterance: decode the audio so far again instead"
            )
        lengths = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.long)
        x, _ = self.encoder.subsampling(feats, lengths)
        new_state = []
        for i, layer in enumerate(self.encoder.layers):
            x, layer_state = layer.step(x, state[i] if state else None)
            x = self.encoder.dropout(x)
            new_state.append(layer_state)
        return self.output(x).log_softmax(dim=-1), new_state

    def min_input_frames(self) -> int:
        """The shortest input that still gives one output frame per subsampling step."""
        return {"stack": 1, "conv2d": 2 * self.config.subsampling_factor + 1, "none": 1}[self.config.subsampling]

    @property
    def subsampling_factor(self) -> int:
        return 1 if self.config.subsampling == "none" else self.config.subsampling_factor


def sized_for_data(config: ModelConfig, directory, frame_shift_ms: float = 10.0) -> ModelConfig:
    """``config`` with its "auto" sizes chosen from the hours of audio in ``directory`` (a Kaldi data or feature
    directory; :func:`speechrecipe.config.model_size_for`), said in the log."""
    if config.sized:
        return config
    hours = hours_of(directory, frame_shift_ms)
    sized = config.sized_for(hours)
    log.info(
        "am.model auto: %.3f h of training audio in %s -> %d layers of %d units",
        hours,
        directory,
        sized.layers,
        sized.hidden,
    )
    return sized
