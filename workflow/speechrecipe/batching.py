"""Batches of utterances: length buckets, their order per epoch, and each rank's part of a batch.

Everything here depends on lengths and (seed, epoch) only, never on the data itself or on
which process asks, so every rank of a data-parallel run, and a resumed run, builds the same
batches in the same order.
"""

from __future__ import annotations

import numpy as np


def bucket_batches(lengths: list[int], max_frames: int, max_batch: int = 256) -> list[list[int]]:
    """Group indices of similar length into batches of at most ``max_frames`` padded frames.

    Sorting by length first keeps padding small; the batches themselves are
    shuffled per epoch by :func:`epoch_order`.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if current and (longest_if_added * (len(current) + 1) > max_frames or len(current) >= max_batch):
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


def epoch_order(batches: list[list[int]], seed: int, epoch: int) -> list[list[int]]:
    """The batches in a random order that depends only on (seed, epoch), so a resumed run repeats it."""
    rng = np.random.default_rng([seed, epoch])
    return [batches[i] for i in rng.permutation(len(batches))]


def shard_batch(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s part of a global batch in data-parallel training: its every ``world_size``-th
    element from position ``rank``.

    All ranks see the same batches in the same order, so over the ranks each batch, and each epoch,
    is covered exactly once: nothing is dropped or repeated. A batch from :func:`bucket_batches` is
    sorted by length, so the parts are of similar length. A rank gets an empty part when the batch
    has fewer than ``world_size`` elements.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    return batch[rank::world_size]


def training_batches(lengths, max_frames: int, max_batch: int, min_batches: int = 1) -> list[list[int]]:
    """Length buckets for training, with at least ``min_batches`` batches when there are that many utterances.

    On a small corpus the frame budget alone would make an epoch of one or two batches, and so a
    handful of optimizer steps per epoch; capping the utterances per batch keeps the step count of
    an epoch at ``min_batches`` or more, however small the corpus.
    """
    per_batch = min(max_batch, max(1, len(lengths) // max(min_batches, 1)))
    return bucket_batches(list(lengths), max_frames, per_batch)
