"""The CTC acoustic model as a task of the training loop (:mod:`speechrecipe.trainer`).

A batch is utterances of a :class:`~speechrecipe.dataset.FeatureSet`, read and padded by the loader's
workers, each with SpecAugment masks of its own (drawn from (seed, epoch, utterance)); the loss is the
summed CTC loss, normalized by the number of utterances; the dev set is measured by its CTC loss per
utterance, its greedy token error rate (``dev_ter``) and the share of utterances it decodes to
nothing (``dev_empty``: 1 while the model is in CTC's all-blank phase).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .augment import keyed_rng, spec_augment
from .batching import shard_batch
from .config import ConcatConfig, SpecAugmentConfig
from .dataset import FeatureSet, Utterance, collate
from .decoding import greedy_ids
from .model.network import CTCModel
from .onthefly import OnTheFly
from .scoring import edit_distance
from .trainer import Batch

NO_SPECAUG = SpecAugmentConfig(freq_masks=0, time_masks=0)


class CTCBatches:
    """Training batches of a feature set (runs in the loader's workers: picklable, no model).

    With ``concat`` (length generalization), some examples of an epoch are several utterances of one
    speaker joined, with short pauses (see :func:`join`), so that a corpus of short utterances (isolated
    words) also teaches the model that an utterance may hold several: a CTC model trained on one word
    per utterance learns to output one word whatever it hears.

    With ``onthefly`` (:class:`~speechrecipe.onthefly.OnTheFly`), utterances are made from their audio,
    speed-perturbed and noisy, instead of read from their stored features.
    """

    def __init__(
        self,
        data: FeatureSet,
        specaug: SpecAugmentConfig,
        seed: int,
        concat: ConcatConfig | None = None,
        frame_shift_ms: float = 10.0,
        onthefly: OnTheFly | None = None,
    ):
        self.data, self.specaug, self.seed, self.onthefly = data, specaug, seed, onthefly
        self.concat = concat if concat is not None and concat.probability > 0 else None
        self.pause_frames = (0, 0)
        if self.concat:
            self.pause_frames = tuple(round(ms / frame_shift_ms) for ms in self.concat.pause_ms)

    def examples(self, epoch: int) -> tuple[list[tuple[int, ...]], list[int]]:
        lengths = self.onthefly.lengths(self.data, epoch) if self.onthefly else self.data.lengths
        if not self.concat:
            return [(i,) for i in range(len(self.data))], [int(n) for n in lengths]
        examples = join_examples(self.data.speakers, lengths, self.concat, keyed_rng(self.seed, epoch, "concat"))
        return examples, [int(sum(lengths[i] for i in e)) + sum(self.pauses(e, epoch)) for e in examples]

    def pauses(self, example: tuple[int, ...], epoch: int) -> list[int]:
        """Frames of pause between the joined utterances of an example, drawn from (seed, epoch, example)."""
        if len(example) == 1:
            return []
        low, high = self.pause_frames
        return keyed_rng(self.seed, epoch, "pause", *example).integers(low, high + 1, size=len(example) - 1).tolist()

    def make(self, examples: list[tuple[int, ...]], epoch: int, rank: int, world: int) -> Batch:
        """This rank's examples of the global batch (rank ``r`` of ``W``: every W-th from r), read, joined,
        augmented and padded. A rank left without one (a batch smaller than W) runs the batch's first example
        with weight 0, so that it still takes part in the gradient all-reduce."""
        mine = shard_batch(list(range(len(examples))), rank, world)
        utts = [self.example(examples[i], epoch) for i in (mine or [0])]
        if self.specaug.enabled:
            masks = self.specaug.to_dict()
            utts = [
                Utterance(u.utt, spec_augment(u.feats, keyed_rng(self.seed, epoch, u.utt), **masks), u.tokens, u.text)
                for u in utts
            ]
        names = ["+".join(self.data.utts[i] for i in e) for e in examples]
        return Batch(names, collate(utts), len(examples), 1.0 if mine else 0.0, mine)

    def example(self, example: tuple[int, ...], epoch: int) -> Utterance:
        if self.onthefly:
            parts = [self.onthefly.utterance(self.data, i, epoch) for i in example]
        else:
            parts = self.data.load(example)
        return parts[0] if len(parts) == 1 else join(parts, self.pauses(example, epoch))


def join_examples(speakers: list[str], lengths, concat: ConcatConfig, rng) -> list[tuple[int, ...]]:
    """An epoch's examples: each speaker's utterances in a random order, each starting, with probability
    ``concat.probability``, an example of 2 to ``concat.max_utterances`` consecutive ones (no longer than
    ``concat.max_frames``); every utterance in exactly one example."""
    by_speaker: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    examples = []
    for speaker in sorted(by_speaker):
        order = [by_speaker[speaker][j] for j in rng.permutation(len(by_speaker[speaker]))]
        j = 0
        while j < len(order):
            size = 1
            if rng.random() < concat.probability:
                size = int(rng.integers(2, concat.max_utterances + 1))
                while size > 1 and sum(lengths[i] for i in order[j : j + size]) > concat.max_frames:
                    size -= 1
            examples.append(tuple(order[j : j + size]))
            j += max(len(examples[-1]), 1)
    return examples


def join(parts: list[Utterance], pauses: list[int]) -> Utterance:
    """Utterances of one speaker as one: features end to end with ``pauses`` frames between them, each pause
    the quietest frame of the utterance before it repeated (what that speaker's silence looks like after
    normalization); transcripts and targets joined in order."""
    pieces = []
    for k, part in enumerate(parts):
        pieces.append(part.feats)
        if k < len(pauses) and pauses[k]:
            quietest = part.feats[int(np.argmin(part.feats.sum(axis=1)))]
            pieces.append(np.repeat(quietest[None, :], pauses[k], axis=0))
    return Utterance(
        "+".join(p.utt for p in parts),
        np.concatenate(pieces),
        [t for p in parts for t in p.tokens],
        " ".join(p.text for p in parts if p.text),
    )


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
        concat: ConcatConfig | None = None,
        frame_shift_ms: float = 10.0,
        onthefly: OnTheFly | None = None,
    ):
        self.model, self.train_set, self.dev_set = model, train_set, dev_set
        self.batch_maker = CTCBatches(train_set, specaug or NO_SPECAUG, seed, concat, frame_shift_ms, onthefly)

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
