"""Cepstral mean and variance normalization (CMVN): statistics and the five normalization modes.

Statistics use Kaldi's layout, a 2 x (dim + 1) float64 matrix: row 0 holds the sums and
the frame count, row 1 the sums of squares (``cmvn.scp`` of a feature directory holds one
per speaker). The modes (:data:`speechrecipe.config.CMVN_MODES`) all subtract a mean *and*
divide by a standard deviation, like Kaldi's ``apply-cmvn --norm-vars=true`` (Kaldi's own
default is ``--norm-vars=false``, means only):

- ``global``: mean and variance of the whole training set (stored in the model);
- ``speaker``: each speaker's own statistics, which removes much of what differs between
  voices and channels (the model then needs a speaker's statistics at inference);
- ``utterance``: each utterance's own statistics (works on any single file);
- ``online``: causal per-utterance statistics seeded with the global ones
  (:class:`OnlineCMVN`): frame t is normalized with what is known at frame t, so a live
  stream is normalized exactly as the training utterances were;
- ``none``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import CMVN_MODES

VARIANCE_FLOOR = 1e-10
# Online CMVN counts the training set's global statistics as this many frames (1 s at a 10 ms shift)
# before the utterance's own frames, like Kaldi's OnlineCmvnOptions::global_frames (200 there): the
# first frames of an utterance are normalized mostly globally, and by 1 s in its own statistics
# weigh as much as the prior. A model stores only its CMVN mode, so changing this constant
# changes what every trained online-CMVN model computes: it is fixed, not a config key.
ONLINE_PRIOR_FRAMES = 100


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
    """``feats`` (frames, dim) normalized by ``mode``: global, speaker (``speaker_stats``), utterance, online, none."""
    if mode == "none":
        return feats
    if mode == "global":
        mean, std = global_mean_std
    elif mode == "speaker":
        mean, std = stats_to_mean_std(speaker_stats)
    elif mode == "utterance":
        mean, std = feats.mean(axis=0), np.sqrt(np.maximum(feats.var(axis=0), VARIANCE_FLOOR))
    elif mode == "online":
        return OnlineCMVN(*global_mean_std).process(feats)
    else:
        raise ValueError(f"unknown CMVN mode '{mode}' (use one of {', '.join(CMVN_MODES)})")
    return ((feats - mean) / std).astype(np.float32)


class OnlineCMVN:
    """Causal CMVN of one utterance, fed frames as they come (:meth:`process`).

    Frame t is normalized with the mean and variance of the global statistics, counted as
    :data:`ONLINE_PRIOR_FRAMES` frames, plus the utterance's frames 0..t. There is no window:
    an utterance is bounded (training's ``am.max_frames``, the server's endpointing and maximum
    utterance length), and each one starts again from the prior.

    The running sums are float64 and accumulated frame after frame in one order
    (``np.cumsum`` is sequential), and everything else is element-wise, so the output does not
    depend on how the frames are split into calls: one call for a stored utterance (training,
    the decode stage, ``asr-transcribe``) and one call per chunk of a live stream (the server)
    give identical numbers.
    """

    def __init__(self, global_mean: np.ndarray, global_std: np.ndarray, prior_frames: int = ONLINE_PRIOR_FRAMES):
        mean = np.asarray(global_mean, dtype=np.float64)
        std = np.asarray(global_std, dtype=np.float64)
        self.count = float(prior_frames)
        self.sums = prior_frames * mean
        self.squares = prior_frames * (std**2 + mean**2)

    def process(self, frames: np.ndarray) -> np.ndarray:
        """The next ``frames`` (n, dim) of the utterance, normalized (float32)."""
        frames = np.asarray(frames, dtype=np.float64)
        if len(frames) == 0:
            return np.zeros(frames.shape, dtype=np.float32)
        sums = np.cumsum(np.vstack([self.sums, frames]), axis=0)[1:]
        squares = np.cumsum(np.vstack([self.squares, frames**2]), axis=0)[1:]
        counts = self.count + np.arange(1, len(frames) + 1, dtype=np.float64)[:, None]
        self.sums, self.squares, self.count = sums[-1], squares[-1], float(counts[-1, 0])
        mean = sums / counts
        var = np.maximum(squares / counts - mean**2, VARIANCE_FLOOR)
        return ((frames - mean) / np.sqrt(var)).astype(np.float32)
