"""Kaldi-compatible acoustic features (fbank, MFCC) of audio and of wav.scp entries.

Features come from ``torchaudio.compliance.kaldi`` (the same computation as
Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats``) on audio resampled
to the recipe's rate. Dither is off by default: with dither the features of an
utterance would depend on the random state, hence on how utterances are split
into jobs (Kaldi #717); without it they depend on the audio alone.

What a feature vector is (:class:`speechrecipe.config.FeatureConfig`) is stored with
every model, so decoding computes the same thing. Archives are :mod:`speechrecipe.archive`,
normalization :mod:`speechrecipe.cmvn`.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import AudioError, FormatReport, read_audio, resample
from .augment import speed_perturb
from .config import FeatureConfig


def compute(samples: np.ndarray, rate: int, config: FeatureConfig) -> np.ndarray:
    """Features of one utterance: (frames, dim) float32.

    Audio shorter than one analysis window gives (0, dim), as Kaldi's snip-edges framing
    does, instead of failing: such an utterance is dropped, with a count in the log, where
    the model's minimum length is known (:class:`speechrecipe.dataset.FeatureSet`).
    """
    samples = resample(samples, rate, config.sample_rate)
    if len(samples) < int(config.sample_rate * config.frame_length_ms * 0.001):  # torchaudio's window size
        return np.zeros((0, config.dim), dtype=np.float32)
    # Kaldi works on 16-bit integer scale; torchaudio's compliance functions expect the same.
    waveform = torch.from_numpy(np.ascontiguousarray(samples) * 32768.0).unsqueeze(0)
    from torchaudio.compliance import kaldi

    common = {
        "sample_frequency": config.sample_rate,
        "frame_length": config.frame_length_ms,
        "frame_shift": config.frame_shift_ms,
        "dither": config.dither,
        "energy_floor": 0.0,
    }
    with torch.no_grad():
        if config.type == "fbank":
            feats = kaldi.fbank(waveform, num_mel_bins=config.num_mel_bins, **common)
        elif config.type == "mfcc":
            feats = kaldi.mfcc(waveform, num_mel_bins=config.num_mel_bins, num_ceps=config.num_ceps, **common)
        else:
            raise ValueError(f"unknown feature type '{config.type}' (use fbank or mfcc)")
    return feats.numpy().astype(np.float32)


def compute_entry(
    entry: str,
    config: FeatureConfig,
    factor: float = 1.0,
    segment=None,
    report: FormatReport | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Features of one wav.scp entry (optionally a segment of it, optionally speed-perturbed).

    ``report`` (see :class:`speechrecipe.audio.FormatReport`) records the recording's own rate
    and channels under ``name``, so the caller can log what was mixed down and resampled.
    """
    start, end = (segment[1], segment[2]) if segment else (0.0, None)
    samples, rate = read_audio(entry, start, end, report=report, name=name)
    return compute(speed_perturb(samples, rate, factor), rate, config)


def compute_in_blocks(samples: np.ndarray, config: FeatureConfig, block_frames: int = 6000) -> np.ndarray:
    """Kaldi features of audio already at ``config.sample_rate``, ``block_frames`` frames at a time.

    Kaldi frames are independent (each is its own window of samples), so
    blocks cut on frame boundaries give exactly the frames of one pass, with
    the memory of one block.
    """
    rate = config.sample_rate
    shift = int(rate * config.frame_shift_ms / 1000)
    length = int(rate * config.frame_length_ms / 1000)
    if len(samples) < length:
        raise AudioError(
            f"too short: {1000 * len(samples) / rate:.0f} ms, less than one {config.frame_length_ms:g} ms frame"
        )
    total = 1 + (len(samples) - length) // shift
    blocks = []
    for first in range(0, total, block_frames):
        last = min(total, first + block_frames)
        blocks.append(compute(samples[first * shift : (last - 1) * shift + length], rate, config))
    return np.concatenate(blocks)
