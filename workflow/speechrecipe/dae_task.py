"""The denoising autoencoder as a task of the training loop (:mod:`speechrecipe.trainer`).

A batch is (noisy, clean) feature pairs of the same utterances, read by the loader's workers: from a
noisy copy on disk (:class:`speechrecipe.dataset.PairedSet`) or mixed from the audio as the batch is made
(:class:`speechrecipe.onthefly.MixedPairs`); the loss is the squared error between the DAE's prediction and the clean
frames, summed over the real (unpadded) output frames and normalized by the number of values it covers;
the dev set is measured by the same mean squared error.
"""

from __future__ import annotations

import math

import torch

from .batching import shard_batch
from .dataset import PairedSet, collate_pairs
from .model.dae import DenoisingAutoencoder, reconstruction_error, reconstruction_loss
from .onthefly import DEV_EPOCH, MixedPairs
from .trainer import Batch

Pairs = PairedSet | MixedPairs


class DAEBatches:
    """Training batches of (noisy, clean) pairs (runs in the loader's workers: picklable, no model)."""

    def __init__(self, pairs: Pairs, factor: int, frame_values: int):
        self.pairs, self.factor, self.frame_values = pairs, factor, frame_values

    def examples(self, epoch: int) -> tuple[list[tuple[int, ...]], list[int]]:
        return [(i,) for i in range(len(self.pairs))], [int(n) for n in self.pairs.lengths]

    def make(self, examples: list[tuple[int, ...]], epoch: int, rank: int, world: int) -> Batch:
        """This rank's pairs of the global batch (every W-th from rank r; one with weight 0 when there are
        fewer pairs than ranks); the normalizer is the values the whole batch's loss covers."""
        indices = [i for (i,) in examples]
        mine = shard_batch(list(range(len(indices))), rank, world)
        lengths = [int(self.pairs.lengths[i]) for i in indices]
        count = sum(math.ceil(n / self.factor) for n in lengths) * self.frame_values
        pairs = [self.pairs.pair(indices[i], epoch) for i in (mine or [0])]
        return Batch([self.pairs.utt(i) for i in indices], collate_pairs(pairs), count, 1.0 if mine else 0.0, mine)


class DAETask:
    kind = "dae"
    prefix = "DAE "
    metrics = ()
    use_amp = False
    nonfinite_advice = "Check their audio, or lower dae.train.lr."

    def __init__(self, model: DenoisingAutoencoder, train_pairs: Pairs, dev_pairs: Pairs):
        self.model, self.train_pairs, self.dev_pairs = model, train_pairs, dev_pairs
        self.batch_maker = DAEBatches(train_pairs, model.factor, model.decoder.out_features)

    def lengths(self, split: str):
        return (self.train_pairs if split == "train" else self.dev_pairs).lengths

    def forward(self, net, batch: Batch, device):
        noisy, _, lengths = batch.inputs
        return net(noisy.to(device, non_blocking=True), lengths.to(device))

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
                noisy, clean, lengths = collate_pairs([self.dev_pairs.pair(i, DEV_EPOCH) for i in batch])
                summed, values = reconstruction_loss(model, noisy.to(device), clean.to(device), lengths.to(device))
                total += float(summed)
                count += values
        return [total, count]

    def dev_metrics(self, sums: list[float]) -> dict[str, float]:
        total, count = sums
        return {"dev_loss": total / max(count, 1)}
