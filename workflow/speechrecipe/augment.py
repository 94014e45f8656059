"""Data augmentation: speed perturbation of audio and SpecAugment of features.

Speed perturbation makes copies of a training set at other speeds (ESPnet's stage 2, Kaldi's
``perturb_data_dir_speed.sh``): a copy's utterance and speaker ids are prefixed ``sp<factor>-``
(:func:`perturbed_id`), so each perturbed speaker gets CMVN statistics of its own.
Noise is :mod:`speechrecipe.noise`.
"""

from __future__ import annotations

import zlib

import numpy as np

from .audio import resample


def perturbed_id(utt_or_speaker: str, factor: float) -> str:
    """The id of an utterance (or speaker) in the copy at speed ``factor``; factor 1 keeps the id."""
    return utt_or_speaker if factor == 1.0 else f"sp{factor:g}-{utt_or_speaker}"


def speed_perturb(samples: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Change speed (tempo and pitch together) like ``sox speed``: resample, keep the nominal rate.

    The intermediate rate is rounded to 100 Hz so that resampling stays cheap
    (torchaudio's kernel grows with the reduced ratio of the two rates).
    """
    if factor == 1.0:
        return samples
    stretched_rate = round(rate / factor / 100.0) * 100
    return resample(samples, rate, stretched_rate)


def keyed_rng(*key) -> np.random.Generator:
    """A random generator that depends on ``key`` alone (e.g. seed, epoch, utterance id), whoever asks and when."""
    return np.random.default_rng(
        [int(k) if isinstance(k, int | np.integer) else zlib.crc32(str(k).encode()) for k in key]
    )


def spec_augment(
    feats: np.ndarray,
    rng: np.random.Generator,
    freq_masks: int = 2,
    freq_width: int | None = None,
    time_masks: int = 2,
    time_width: float = 0.05,
) -> np.ndarray:
    """SpecAugment (Park et al. 2019) without time warping on one utterance (frames, dim): zero random
    bands of frequency and time, drawn from ``rng``.

    Time masks are at most ``time_width`` of the utterance long. Masked values are set to 0, the
    mean of normalized features. Drawn per utterance (from a generator of its own, see
    :func:`keyed_rng`), so an utterance gets the same masks whichever batch, process or rank
    it lands in.
    """
    feats = feats.copy()
    frames, dim = feats.shape
    if freq_width is None:  # in proportion to the features: 15 of 80 mel bins would hide all 13 cepstra of an MFCC
        freq_width = round(dim * 3 / 16)
    for _ in range(freq_masks):
        width = int(rng.integers(0, freq_width + 1))
        start = int(rng.integers(0, max(1, dim - width)))
        feats[:, start : start + width] = 0.0
    for _ in range(time_masks):
        width = int(rng.integers(0, max(1, int(time_width * frames)) + 1))
        start = int(rng.integers(0, max(1, frames - width)))
        feats[start : start + width, :] = 0.0
    return feats
