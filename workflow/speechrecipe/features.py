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

import functools
import math

import numpy as np
import torch

from .audio import AudioError, FormatReport, read_audio, resample
from .augment import speed_perturb
from .config import FeatureConfig

# Analysis windows computed in one pass: the frames of many short utterances share the per-call cost, and
# a block this size stays in the CPU's cache (one pass over 64 long clips, ~40k frames, was 2x slower per
# frame than one clip at a time on LJ Speech; blocks of 256 were the fastest of 64-4096, bench/feature_throughput.py).
BLOCK_FRAMES = 256


class Extractor:
    """Kaldi fbank or MFCC for one feature config, on many utterances at once.

    The same computation as ``torchaudio.compliance.kaldi`` (snip-edges frames, DC offset removed,
    pre-emphasis 0.97, Povey window, power spectrum, mel banks from 20 Hz to Nyquist, log; for MFCC
    the orthonormal DCT with Kaldi's C0 and a lifter of 22), with the window, the mel banks and
    the DCT made once per config rather than once per call, and the frames of several utterances
    in one FFT: on short utterances (digits, 0.5 s) the per-call cost was most of the time.
    """

    def __init__(self, config: FeatureConfig):
        from torchaudio.compliance import kaldi
        from torchaudio.functional import create_dct

        self.config = config
        rate = config.sample_rate
        self.shift = int(rate * config.frame_shift_ms * 0.001)
        self.size = int(rate * config.frame_length_ms * 0.001)
        self.padded = 1 << (self.size - 1).bit_length()
        self.window = torch.hann_window(self.size, periodic=False, dtype=torch.float32).pow(0.85)
        mel, _ = kaldi.get_mel_banks(config.num_mel_bins, self.padded, float(rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        self.mel = torch.nn.functional.pad(mel.float(), (0, 1)).T.contiguous()
        if config.type == "mfcc":
            dct = create_dct(config.num_mel_bins, config.num_mel_bins, "ortho")
            dct[:, 0] = math.sqrt(1 / float(config.num_mel_bins))  # Kaldi's C0
            self.dct = dct[:, : config.num_ceps].float()
            i = torch.arange(config.num_ceps)
            self.lifter = (1.0 + 0.5 * 22.0 * torch.sin(math.pi * i / 22.0)).float()
        elif config.type != "fbank":
            raise ValueError(f"unknown feature type '{config.type}' (use fbank or mfcc)")
        self.epsilon = torch.tensor(torch.finfo(torch.float32).eps)

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """The analysis windows of one utterance at the config's rate (Kaldi's snip-edges framing), 16-bit scale."""
        if len(samples) < self.size:
            return np.zeros((0, self.size), dtype=np.float32)
        scaled = np.ascontiguousarray(samples, dtype=np.float32) * np.float32(32768.0)
        return np.lib.stride_tricks.sliding_window_view(scaled, self.size)[:: self.shift]

    def __call__(self, utterances: list[np.ndarray]) -> list[np.ndarray]:
        """Features (frames, dim) float32 of each utterance (samples already at the config's rate)."""
        framed = [self.frames(u) for u in utterances]
        counts = [len(f) for f in framed]
        if not sum(counts):
            return [np.zeros((0, self.config.dim), dtype=np.float32) for _ in utterances]
        frames = np.concatenate(framed)
        with torch.no_grad():
            feats = torch.cat([self.block(frames[b : b + BLOCK_FRAMES]) for b in range(0, len(frames), BLOCK_FRAMES)])
        return [f.numpy() for f in torch.split(feats, counts)]

    def block(self, frames: np.ndarray) -> torch.Tensor:
        """Features of a block of analysis windows (each row is independent of the others)."""
        x = torch.from_numpy(frames)
        x = x - x.mean(dim=1, keepdim=True)
        x = x - 0.97 * torch.cat([x[:, :1], x[:, :-1]], dim=1)
        x = torch.nn.functional.pad(x * self.window, (0, self.padded - self.size))
        power = torch.fft.rfft(x).abs().pow(2.0)
        feats = torch.max(torch.mm(power, self.mel), self.epsilon).log()
        if self.config.type == "mfcc":
            feats = feats.matmul(self.dct) * self.lifter
        return feats


@functools.lru_cache(maxsize=8)
def extractor(config: FeatureConfig) -> Extractor:
    return Extractor(config)


def compute_many(utterances: list[tuple[np.ndarray, int]], config: FeatureConfig) -> list[np.ndarray]:
    """Features of several utterances, (samples, rate) each, in one pass (see :class:`Extractor`)."""
    if config.dither:
        return [compute(samples, rate, config) for samples, rate in utterances]
    return extractor(config)([resample(samples, rate, config.sample_rate) for samples, rate in utterances])


def compute(samples: np.ndarray, rate: int, config: FeatureConfig) -> np.ndarray:
    """Features of one utterance: (frames, dim) float32.

    Audio shorter than one analysis window gives (0, dim), as Kaldi's snip-edges framing
    does, instead of failing: such an utterance is dropped, with a count in the log, where
    the model's minimum length is known (:class:`speechrecipe.dataset.FeatureSet`). With
    dither (random noise, so not a function of the audio alone) torchaudio computes it.
    """
    if not config.dither:
        return compute_many([(samples, rate)], config)[0]
    samples = resample(samples, rate, config.sample_rate)
    if len(samples) < int(config.sample_rate * config.frame_length_ms * 0.001):
        return np.zeros((0, config.dim), dtype=np.float32)
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
        else:
            feats = kaldi.mfcc(waveform, num_mel_bins=config.num_mel_bins, num_ceps=config.num_ceps, **common)
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
