"""Kaldi-compatible acoustic features and CMVN statistics.

Features come from ``torchaudio.compliance.kaldi`` (the same computation as
Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats``) on audio resampled
to the recipe's rate. Dither is off by default: with dither the features of an
utterance would depend on the random state, hence on how utterances are split
into jobs (Kaldi #717); without it they depend on the audio alone.

CMVN statistics use Kaldi's layout, a 2 x (dim + 1) matrix: row 0 holds the
sums and the frame count, row 1 the sums of squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import FormatReport, read_audio, resample


@dataclass(frozen=True)
class FeatureConfig:
    """What a feature vector is; saved with every model so decoding computes the same thing."""

    type: str = "fbank"  # fbank | mfcc
    num_mel_bins: int = 80
    num_ceps: int = 13  # mfcc only
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0

    @property
    def dim(self) -> int:
        return self.num_mel_bins if self.type == "fbank" else self.num_ceps

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def speed_perturb(samples: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Change speed (tempo and pitch together) like ``sox speed``: resample, keep the nominal rate.

    The intermediate rate is rounded to 100 Hz so that resampling stays cheap
    (torchaudio's kernel grows with the reduced ratio of the two rates).
    """
    if factor == 1.0:
        return samples
    stretched_rate = int(round(rate / factor / 100.0)) * 100
    return resample(samples, rate, stretched_rate)


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

    common = dict(
        sample_frequency=config.sample_rate,
        frame_length=config.frame_length_ms,
        frame_shift=config.frame_shift_ms,
        dither=config.dither,
        energy_floor=0.0,
    )
    with torch.no_grad():
        if config.type == "fbank":
            feats = kaldi.fbank(waveform, num_mel_bins=config.num_mel_bins, **common)
        elif config.type == "mfcc":
            feats = kaldi.mfcc(waveform, num_mel_bins=config.num_mel_bins, num_ceps=config.num_ceps, **common)
        else:
            raise ValueError(f"unknown feature type '{config.type}' (use fbank or mfcc)")
    return feats.numpy().astype(np.float32)


def compute_entry(entry: str, config: FeatureConfig, factor: float = 1.0, segment=None,
                  report: FormatReport | None = None, name: str | None = None) -> np.ndarray:
    """Features of one wav.scp entry (optionally a segment of it, optionally speed-perturbed).

    ``report`` (see :class:`speechrecipe.audio.FormatReport`) records the recording's own rate
    and channels under ``name``, so the caller can log what was mixed down and resampled.
    """
    start, end = (segment[1], segment[2]) if segment else (0.0, None)
    samples, rate = read_audio(entry, start, end, report=report, name=name)
    return compute(speed_perturb(samples, rate, factor), rate, config)


# --- archives -----------------------------------------------------------------

class ArchiveError(ValueError):
    """A Kaldi archive is missing, truncated or corrupt."""


def archive_of(entry: str) -> Path:
    """The archive a ``feats.scp`` value (``path/feats.3.ark:1234``) points into."""
    return Path(entry.rpartition(":")[0])


def load_matrix(entry: str) -> np.ndarray:
    """One matrix of an archive, by its scp value; :class:`ArchiveError` when the archive is damaged.

    kaldiio reads a truncated file into a short buffer and fails with whatever numpy or struct
    says (or, for a cut exactly between matrices, only at the offset past the end): both are
    turned into one error that names the archive.
    """
    import kaldiio

    path, _, offset = entry.rpartition(":")
    if not Path(path).is_file():
        raise ArchiveError(f"{path} does not exist")
    if not offset.isdigit() or int(offset) >= Path(path).stat().st_size:
        raise ArchiveError(f"{path}: offset {offset} is past its end ({Path(path).stat().st_size} bytes): truncated")
    try:
        return np.asarray(kaldiio.load_mat(entry))
    except Exception as e:  # noqa: BLE001 - kaldiio raises many types for a damaged archive
        raise ArchiveError(f"{path}: cannot read the matrix at offset {offset} ({type(e).__name__}: {e}): "
                           "truncated or corrupt") from e


# --- CMVN -------------------------------------------------------------------

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


def stats_to_mean_std(stats: np.ndarray, floor: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean**2, floor)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)
