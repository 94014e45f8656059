"""The CTC acoustic model as a task of the training loop (:mod:`speechrecipe.trainer`).

A batch is utterances of a :class:`~speechrecipe.dataset.FeatureSet`, padded, with
SpecAugment drawn for the whole global batch; the loss is the summed CTC loss, normalized
by the number of utterances; the dev set is measured by its CTC loss per utterance and its
greedy token error rate (``dev_ter``).
"""

from __future__ import annotations

import math

import torch

from .augment import spec_augment
from .batching import shard_batch
from .config import SpecAugmentConfig
from .dataset import FeatureSet, collate
from .decoding import greedy_ids
from .model.network import CTCModel
from .scoring import edit_distance
from .trainer import Batch


class CTCTask:
    kind = "ctc"
    prefix = ""
    metrics = ("dev_ter",)
    use_amp = True
    nonfinite_advice = "Check their audio and transcripts, or lower the learning rate."

    def __init__(
        self, model: CTCModel, train_set: FeatureSet, dev_set: FeatureSet, specaug: SpecAugmentConfig | None = None
    ):
        self.model, self.train_set, self.dev_set = model, train_set, dev_set
        self.specaug = specaug or SpecAugmentConfig(freq_masks=0, time_masks=0)

    def lengths(self, split: str) -> list[int]:
        data = self.train_set if split == "train" else self.dev_set
        return [len(u.feats) for u in data.utterances]

    def batch(self, indices: list[int], generator, rank: int, world: int) -> Batch:
        utts = [self.train_set.utterances[i] for i in indices]
        feats, lengths, targets, target_lengths = collate(utts)
        if self.specaug.enabled:
            feats = spec_augment(feats, lengths, generator, **self.specaug.to_dict())
        names = [u.utt for u in utts]
        if world == 1:
            return Batch(names, (feats, lengths, targets, target_lengths), len(utts), 1.0, list(range(len(utts))))
        return self._rank_part(utts, names, feats, lengths, target_lengths, rank, world)

    @staticmethod
    def _rank_part(utts, names, feats, lengths, target_lengths, rank: int, world: int) -> Batch:
        """This rank's utterances of a collated (and augmented) global batch, padding trimmed to them.

        Weight 0 means the batch has fewer utterances than there are ranks and this rank got none; it
        then runs the batch's first utterance, whose loss counts 0, so that it still takes part in the
        gradient all-reduce.
        """
        mine = shard_batch(list(range(len(utts))), rank, world)
        weight = 1.0 if mine else 0.0
        rows = mine or [0]
        index = torch.tensor(rows)
        lengths = lengths[index]
        feats = feats[index, : int(lengths.max())]
        targets = torch.tensor([t for i in rows for t in utts[i].tokens], dtype=torch.long)
        return Batch(names, (feats, lengths, targets, target_lengths[index]), len(utts), weight, mine)

    def forward(self, net, batch: Batch, device):
        feats, lengths, _, _ = batch.inputs
        return net(feats.to(device), lengths.to(device))

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
        named = [u for u, loss in zip(mine, per_utterance.tolist()) if not math.isfinite(loss)]
        return named or mine

    def dev_sums(self, model, batches, device) -> list[float]:
        """Summed CTC loss, token errors, reference tokens and utterances over ``batches``."""
        model.eval()
        total_loss, total_errors, total_tokens, count = 0.0, 0, 0, 0
        with torch.no_grad():
            for batch in batches:
                utts = [self.dev_set.utterances[i] for i in batch]
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
                for u, hyp in zip(utts, greedy_ids(log_probs.cpu(), out_lengths.cpu())):
                    total_errors += edit_distance(u.tokens, hyp)
                    total_tokens += len(u.tokens)
        return [total_loss, total_errors, total_tokens, count]

    def dev_metrics(self, sums: list[float]) -> dict[str, float]:
        total_loss, total_errors, total_tokens, count = sums
        return {"dev_loss": total_loss / max(count, 1), "dev_ter": total_errors / max(total_tokens, 1)}
