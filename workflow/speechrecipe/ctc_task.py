"""The CTC acoustic model as a task of the training loop (:mod:`speechrecipe.trainer`).

A batch is utterances of a :class:`~speechrecipe.dataset.FeatureSet`, read and padded by the loader's
workers, each with SpecAugment masks of its own (drawn from (seed, epoch, utterance)); the loss is the
summed CTC loss, normalized by the number of utterances; the dev set is measured by its CTC loss per
utterance, its greedy token error rate (``dev_ter``) and the share of utterances it decodes to
nothing (``dev_empty``: 1 while the model is in CTC's all-blank phase).
"""

from __future__ import annotations

import math

import torch

from .augment import keyed_rng, spec_augment
from .batching import shard_batch
from .config import SpecAugmentConfig
from .dataset import FeatureSet, Utterance, collate
from .decoding import greedy_ids
from .model.network import CTCModel
from .scoring import edit_distance
from .trainer import Batch

NO_SPECAUG = SpecAugmentConfig(freq_masks=0, time_masks=0)


class CTCBatches:
    """Training batches of a feature set (runs in the loader's workers: picklable, no model)."""

    def __init__(self, data: FeatureSet, specaug: SpecAugmentConfig, seed: int):
        self.data, self.specaug, self.seed = data, specaug, seed

    def make(self, indices: list[int], epoch: int, rank: int, world: int) -> Batch:
        """This rank's utterances of the global batch ``indices`` (rank ``r`` of ``W``: every W-th from r),
        read, augmented and padded. A rank left without one (a batch smaller than W) runs the batch's
        first utterance with weight 0, so that it still takes part in the gradient all-reduce."""
        mine = shard_batch(list(range(len(indices))), rank, world)
        utts = self.data.load([indices[i] for i in (mine or [0])])
        if self.specaug.enabled:  # new objects: a set held in memory keeps its own
            masks = self.specaug.to_dict()
            utts = [
                Utterance(u.utt, spec_augment(u.feats, keyed_rng(self.seed, epoch, u.utt), **masks), u.tokens, u.text)
                for u in utts
            ]
        names = [self.data.utts[i] for i in indices]
        return Batch(names, collate(utts), len(indices), 1.0 if mine else 0.0, mine)


class CTCTask:
    kind = "ctc"
    prefix = ""
    metrics = ("dev_ter", "dev_empty")
    use_amp = True
    nonfinite_advice = "Check their audio and transcripts, or lower the learning rate."

    def __init__(
        self,
        model: CTCModel,
        train_set: FeatureSet,
        dev_set: FeatureSet,
        specaug: SpecAugmentConfig | None = None,
        seed: int = 1,
    ):
        self.model, self.train_set, self.dev_set = model, train_set, dev_set
        self.batch_maker = CTCBatches(train_set, specaug or NO_SPECAUG, seed)

    def lengths(self, split: str):
        return (self.train_set if split == "train" else self.dev_set).lengths

    def forward(self, net, batch: Batch, device):
        feats, lengths, _, _ = batch.inputs
        return net(feats.to(device, non_blocking=True), lengths.to(device))

    def loss(self, outputs, batch: Batch, device) -> torch.Tensor:
        return self._ctc(outputs, batch, device, "sum")

    @staticmethod
    def _ctc(outputs, batch: Batch, device, reduction: str) -> torch.Tensor:
        log_probs, out_lengths = outputs
        _, _, targets, target_lengths = batch.inputs
        return torch.nn.functional.ctc_loss(
            log_probs.float().transpose(0, 1),
            targets.to(device),
            out_lengths,
            target_lengths.to(device),
            blank=0,
            reduction=reduction,
            zero_infinity=True,
        )

    def nonfinite_utterances(self, outputs, batch: Batch, device) -> list[str]:
        """The utterances whose own CTC loss is not finite (all of this rank's when none is alone)."""
        mine = [batch.utts[i] for i in batch.mine] or batch.utts[:1]
        with torch.no_grad():
            per_utterance = self._ctc(outputs, batch, device, "none")
        named = [u for u, loss in zip(mine, per_utterance.tolist(), strict=False) if not math.isfinite(loss)]
        return named or mine

    def dev_sums(self, model, batches, device) -> list[float]:
        """Summed CTC loss, token errors, reference tokens, utterances and empty hypotheses over ``batches``."""
        model.eval()
        total_loss, total_errors, total_tokens, count, empty = 0.0, 0, 0, 0, 0
        with torch.no_grad():
            for batch in batches:
                utts = self.dev_set.load(batch)
                feats, lengths, targets, target_lengths = collate(utts)
                log_probs, out_lengths = model(feats.to(device), lengths.to(device))
                loss = torch.nn.functional.ctc_loss(
                    log_probs.float().transpose(0, 1),
                    targets,
                    out_lengths.cpu(),
                    target_lengths,
                    blank=0,
                    reduction="sum",
                    zero_infinity=True,
                )
                total_loss += float(loss)
                count += len(utts)
                for u, hyp in zip(utts, greedy_ids(log_probs.cpu(), out_lengths.cpu()), strict=True):
                    total_errors += edit_distance(u.tokens, hyp)
                    total_tokens += len(u.tokens)
                    empty += not hyp
        return [total_loss, total_errors, total_tokens, count, empty]

    def dev_metrics(self, sums: list[float]) -> dict[str, float]:
        total_loss, total_errors, total_tokens, count, empty = sums
        return {
            "dev_loss": total_loss / max(count, 1),
            "dev_ter": total_errors / max(total_tokens, 1),
            "dev_empty": empty / max(count, 1),
        }
