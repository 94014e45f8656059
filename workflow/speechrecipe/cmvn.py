"""Cepstral mean and variance normalization (CMVN): statistics and the four normalization modes.

Statistics use Kaldi's layout, a 2 x (dim + 1) float64 matrix: row 0 holds the sums and
the frame count, row 1 the sums of squares (``cmvn.scp`` of a feature directory holds one
per speaker). The modes (:data:`speechrecipe.config.CMVN_MODES`) all subtract a mean *and*
divide by a standard deviation, like Kaldi's ``apply-cmvn --norm-vars=true`` (Kaldi's own
default is ``--norm-vars=false``, means only):

- ``global``: mean and variance of the whole training set (stored in the model);
- ``speaker``: each speaker's own statistics, which removes much of what differs between
  voices and channels (the model then needs a speaker's statistics at inference);
- ``utterance``: each utterance's own statistics (works on any single file);
- ``none``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import CMVN_MODES

VARIANCE_FLOOR = 1e-10


def accumulate_stats(feats_list) -> np.ndarray:
    """Kaldi CMVN statistics (2 x dim+1, float64) of a sequence of (frames, dim) matrices."""
    stats = None
    for feats in feats_list:
        feats = np.asarray(feats, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, feats.shape[1] + 1))
        stats[0, :-1] += feats.sum(axis=0)
        stats[1, :-1] += (feats**2).sum(axis=0)
        stats[0, -1] += feats.shape[0]
    if stats is None:
        raise ValueError("no features to accumulate CMVN statistics from")
    return stats


def stats_to_mean_std(stats: np.ndarray, floor: float = VARIANCE_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean**2, floor)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def load_speaker_stats(feat_dir: str | Path) -> dict[str, np.ndarray]:
    """Each speaker's statistics, from a feature directory's ``cmvn.scp``."""
    import kaldiio

    return {spk: np.asarray(m) for spk, m in kaldiio.load_scp(str(Path(feat_dir) / "cmvn.scp")).items()}


def global_stats(feat_dir: str | Path) -> np.ndarray:
    """A set's global statistics: the sum of its speakers' statistics."""
    return sum(load_speaker_stats(feat_dir).values())


def normalize(
    feats: np.ndarray,
    mode: str,
    speaker_stats: np.ndarray | None = None,
    global_mean_std: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``feats`` (frames, dim) normalized by ``mode``: global, speaker (with ``speaker_stats``), utterance or none."""
    if mode == "none":
        return feats
    if mode == "global":
        mean, std = global_mean_std
    elif mode == "speaker":
        mean, std = stats_to_mean_std(speaker_stats)
    elif mode == "utterance":
        mean, std = feats.mean(axis=0), np.sqrt(np.maximum(feats.var(axis=0), VARIANCE_FLOOR))
    else:
        raise ValueError(f"unknown CMVN mode '{mode}' (use one of {', '.join(CMVN_MODES)})")
    return ((feats - mean) / std).astype(np.float32)
