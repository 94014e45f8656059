"""The denoising autoencoder as a task of the training loop (:mod:`speechrecipe.trainer`).

A batch is (noisy, clean) feature pairs of the same utterances (:func:`speechrecipe.dataset.parallel_set`);
the loss is the squared error between the DAE's prediction and the clean frames, summed over
the real (unpadded) output frames and normalized by the number of values it covers; the dev
set is measured by the same mean squared error.
"""

from __future__ import annotations

import math

import torch

from .batching import shard_batch
from .dataset import ParallelUtterance, collate_pairs
from .model.dae import DenoisingAutoencoder
from .trainer import Batch


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


class DAETask:
    kind = "dae"
    prefix = "DAE "
    metrics = ()
    use_amp = False
    nonfinite_advice = "Check their audio, or lower dae.train.lr."

    def __init__(
        self, model: DenoisingAutoencoder, train_pairs: list[ParallelUtterance], dev_pairs: list[ParallelUtterance]
    ):
        self.model, self.train_pairs, self.dev_pairs = model, train_pairs, dev_pairs

    def lengths(self, split: str) -> list[int]:
        pairs = self.train_pairs if split == "train" else self.dev_pairs
        return [len(p.noisy) for p in pairs]

    def values(self, lengths) -> int:
        """The values the loss of utterances of these lengths covers: output frames times frame size."""
        factor = self.model.factor
        return sum(math.ceil(int(n) / factor) for n in lengths) * self.model.decoder.out_features

    def batch(self, indices: list[int], generator, rank: int, world: int) -> Batch:
        pairs = [self.train_pairs[i] for i in indices]
        noisy, clean, lengths = collate_pairs(pairs)
        names = [p.utt for p in pairs]
        count = self.values(lengths)
        mine = shard_batch(list(range(len(pairs))), rank, world)
        if world == 1:
            return Batch(names, (noisy, clean, lengths), count, 1.0, mine)
        rows = mine or [0]  # a rank without an utterance runs the first one, with weight 0
        index = torch.tensor(rows)
        lengths = lengths[index]
        longest = int(lengths.max())
        return Batch(
            names, (noisy[index, :longest], clean[index, :longest], lengths), count, 1.0 if mine else 0.0, mine
        )

    def forward(self, net, batch: Batch, device):
        noisy, _, lengths = batch.inputs
        return net(noisy.to(device), lengths.to(device))

    def loss(self, outputs, batch: Batch, device) -> torch.Tensor:
        predicted, out_lengths = outputs
        summed, _ = reconstruction_error(self.model, predicted, out_lengths, batch.inputs[1].to(device))
        return summed

    def nonfinite_utterances(self, outputs, batch: Batch, device) -> list[str]:
        return [batch.utts[i] for i in batch.mine] or batch.utts[:1]

    def dev_sums(self, model, batches, device) -> list[float]:
        """Summed squared error and the values it covers."""
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in batches:
                noisy, clean, lengths = collate_pairs([self.dev_pairs[i] for i in batch])
                summed, values = reconstruction_loss(model, noisy.to(device), clean.to(device), lengths.to(device))
                total += float(summed)
                count += values
        return [total, count]

    def dev_metrics(self, sums: list[float]) -> dict[str, float]:
        total, count = sums
        return {"dev_loss": total / max(count, 1)}
