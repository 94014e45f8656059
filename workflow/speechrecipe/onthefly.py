"""On-the-fly augmentation: speed perturbation and noise made from the audio when a batch asks for it.

The copies on disk (``features.speed_perturb``, the noisy training sets of :mod:`speechrecipe.noise`)
multiply a corpus's storage by the number of factors and conditions; here each training utterance
is read from its ``wav.scp`` entry by the loader's workers, changed, and its features computed and
normalized in memory. What an utterance gets in an epoch (:class:`Draw`: speed factor, and noise
file, offset and SNR or none) is drawn from ``(seed, epoch, utterance id)`` alone
(:func:`speechrecipe.augment.keyed_rng`), so its features do not depend on the batch it lands in,
on the number of workers or ranks, or on a resume; another epoch draws anew.

The audio is changed in the order of the disk copies: speed first (:func:`speechrecipe.augment.speed_perturb`,
as make_features.py), then noise at an SNR against the perturbed speech (:func:`speechrecipe.noise.mix`).

The denoising autoencoder's pairs are made the same way (:class:`MixedPairs`): the clean side is the stored
features, the noisy side the same audio mixed with noise, anew each epoch for training and with one fixed
draw for the dev set, so that its checks compare.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import read_audio
from .augment import keyed_rng, speed_perturb
from .cmvn import normalize
from .config import FeatureConfig, OnTheFlyConfig
from .dataset import FeatureSet, Utterance
from .features import compute
from .noise import load_noise, mix, noise_files, noise_segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Draw:
    """What one utterance gets in one epoch."""

    factor: float
    noise: str | None  # a noise file, or None for clean audio
    snr: float
    offset_fraction: float  # where in the noise it starts, as a fraction of the noise's length


# Noise files a worker keeps decoded: a folder of a few minutes of noise fits, and a large one
# (MUSAN's 930 files) is read again only when a file falls out, rather than all held per worker.
NOISE_CACHE = 64


@functools.lru_cache(maxsize=NOISE_CACHE)
def cached_noise(path: str, rate: int) -> np.ndarray:
    return load_noise(path, rate)


class OnTheFly:
    """Augmented features of training utterances; picklable (it runs in the loader's workers).

    ``audio`` maps an utterance id to its (wav.scp entry, start, end); utterances without one (extra
    training sets from other corpora) are read from their stored features unchanged.
    """

    def __init__(self, config: OnTheFlyConfig, audio: dict, features: FeatureConfig, seed: int):
        self.config, self.audio, self.features, self.seed = config, audio, features, seed
        self.factors = [float(f) for f in config.speed_perturb] or [1.0]
        self.noises = [str(p) for p in noise_files(config.noise_dirs)] if config.noise_dirs else []

    def draw(self, utt: str, epoch: int) -> Draw:
        """Utterance ``utt``'s augmentation in ``epoch``: every value is drawn, used or not, so each has its place."""
        rng = keyed_rng(self.seed, epoch, "onthefly", utt)
        factor = self.factors[int(rng.integers(len(self.factors)))]
        noisy = rng.random() < self.config.noise_probability
        noise = self.noises[int(rng.integers(len(self.noises)))] if self.noises else None
        snr = float(self.config.snrs[int(rng.integers(len(self.config.snrs)))])
        return Draw(factor, noise if noisy else None, snr, float(rng.random()))

    def samples(self, utt: str, epoch: int) -> tuple[np.ndarray, int]:
        """The augmented audio of ``utt`` in ``epoch``, at the recording's own rate."""
        entry, start, end = self.audio[utt]
        samples, rate = read_audio(entry, start, end)
        return self.augment(samples, rate, utt, epoch), rate

    def augment(self, samples: np.ndarray, rate: int, utt: str, epoch: int) -> np.ndarray:
        """``samples`` of ``utt`` changed as its draw in ``epoch`` says."""
        draw = self.draw(utt, epoch)
        samples = speed_perturb(samples, rate, draw.factor)
        if draw.noise is not None:
            noise = cached_noise(draw.noise, rate)
            offset = int(draw.offset_fraction * len(noise))
            samples = mix(samples, noise_segment(noise, offset, len(samples)), draw.snr)
        return samples

    def feats(self, utt: str, epoch: int) -> np.ndarray:
        """Features (not normalized) of the augmented audio of ``utt`` in ``epoch``."""
        samples, rate = self.samples(utt, epoch)
        return self.features_of(samples, rate, utt, epoch)

    def features_of(self, samples: np.ndarray, rate: int, utt: str, epoch: int) -> np.ndarray:
        """Features of audio of ``utt`` in ``epoch``, with dither (if any) drawn from them."""
        if not self.features.dither:
            return compute(samples, rate, self.features)
        # Dither draws from torch's global generator: seeded here by the utterance and epoch, in a
        # fork of it, so that the features stay a function of the config and training's own draws
        # (dropout) are left as they were.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(keyed_rng(self.seed, epoch, "dither", utt).integers(2**62)))
            return compute(samples, rate, self.features)

    def utterance(self, data: FeatureSet, i: int, epoch: int) -> Utterance:
        """Utterance ``i`` of ``data`` as training sees it in ``epoch``.

        Normalized by the training set's CMVN mode with the statistics of the clean training set: computing
        a noisy or perturbed speaker's statistics would take a pass over all of that speaker's audio per
        epoch, and these are close enough. Global CMVN (and online, seeded with it) then normalizes exactly
        as decoding does; utterance CMVN uses the utterance's own, as ever; speaker CMVN uses the speaker's
        clean statistics, where a stored noisy copy, like a noisy test set, has its own noisy speaker's.
        """
        utt = data.utts[i]
        if utt not in self.audio:
            return data[i]
        feats = normalize(
            self.feats(utt, epoch), data.cmvn, data.speaker_stats.get(data.speakers[i]), data.global_mean_std
        )
        return Utterance(utt, feats, data.tokens(i), data.texts[i])

    def lengths(self, data: FeatureSet, epoch: int) -> np.ndarray:
        """Each utterance's length in ``epoch``, near enough for length buckets: the stored length over the factor."""
        factors = [self.draw(u, epoch).factor if u in self.audio else 1.0 for u in data.utts]
        return np.maximum(1, np.round(data.lengths / np.asarray(factors))).astype(np.int64)


# The epoch the DAE's dev pairs are asked for: one fixed draw of noise for every dev check.
DEV_EPOCH = 0


class MixedPairs:
    """(noisy, clean) pairs for the DAE, the noisy side mixed from the clean set's audio as a batch asks for it.

    The same interface as :class:`speechrecipe.dataset.PairedSet` (``lengths``, ``utt``, ``pair``), without
    a noisy copy on disk. The dev set's pairs are always asked for with one epoch (:data:`DEV_EPOCH`), so
    every check sees the same noisy features.
    """

    def __init__(self, clean: FeatureSet, onthefly: OnTheFly):
        self.clean, self.onthefly = clean, onthefly
        self.index = [i for i, u in enumerate(clean.utts) if u in onthefly.audio]
        missing = len(clean) - len(self.index)
        if missing:
            log.warning("%s: %d utterance(s) without audio in the data directory, left out", clean.feat_dir, missing)
        if not self.index:
            raise ValueError(
                f"{clean.feat_dir}: none of its utterances is in the data directory given for its audio: "
                "give the Kaldi data directory its features were made from"
            )
        self.lengths = clean.lengths[self.index]

    def __len__(self) -> int:
        return len(self.index)

    def utt(self, k: int) -> str:
        return self.clean.utts[self.index[k]]

    def pair(self, k: int, epoch: int) -> tuple[str, np.ndarray, np.ndarray]:
        """(utterance id, noisy features, clean features) of pair ``k`` in ``epoch``, both normalized as the
        clean set is (:meth:`OnTheFly.utterance`)."""
        i = self.index[k]
        clean = self.clean[i]
        noisy = self.onthefly.utterance(self.clean, i, epoch).feats
        # The same audio at the same rate gives the stored frame count; a dithered or otherwise made
        # archive could differ by a frame at the end, which the pair leaves out.
        frames = min(len(noisy), len(clean.feats))
        return clean.utt, noisy[:frames], clean.feats[:frames]


class AudioPairs:
    """(noisy, clean) pairs for the DAE from untranscribed audio (:mod:`speechrecipe.audio_sources`): both sides
    computed from the audio as a batch asks for it, the noisy one mixed as :class:`OnTheFly` draws it.

    Normalized by ``cmvn`` as the acoustic model's input is, with two exceptions a corpus without speakers
    imposes: under 'speaker' CMVN each utterance is normalized by its own statistics (its speaker is
    unknown), and 'global' and 'online' use the training set's statistics. Utterances shorter than
    ``min_frames`` are left out.
    """

    def __init__(self, items, mixing: OnTheFly, cmvn: str, global_mean_std, min_frames: int = 1):
        config = mixing.features
        rate = config.sample_rate
        window, shift = int(rate * config.frame_length_ms / 1000), int(rate * config.frame_shift_ms / 1000)
        frames = [1 + (int(item.seconds * rate) - window) // shift for item in items]
        kept = [(item, n) for item, n in zip(items, frames, strict=True) if n >= min_frames]
        self.items = [item for item, _ in kept]
        self.lengths = np.asarray([n for _, n in kept], dtype=np.int64)
        self.mixing, self.global_mean_std = mixing, global_mean_std
        self.cmvn = "utterance" if cmvn == "speaker" else cmvn
        self.dropped_short = len(items) - len(kept)

    def __len__(self) -> int:
        return len(self.items)

    def utt(self, k: int) -> str:
        return self.items[k].utt

    def pair(self, k: int, epoch: int) -> tuple[str, np.ndarray, np.ndarray]:
        item = self.items[k]
        samples, rate = read_audio(item.entry, item.start, item.end)
        clean = self.mixing.features_of(samples, rate, item.utt, epoch)
        noisy = self.mixing.features_of(self.mixing.augment(samples, rate, item.utt, epoch), rate, item.utt, epoch)
        frames = min(len(clean), len(noisy))
        return (
            item.utt,
            normalize(noisy[:frames], self.cmvn, None, self.global_mean_std),
            normalize(clean[:frames], self.cmvn, None, self.global_mean_std),
        )


class PairsUnion:
    """Several pair sets as one (the same interface): the transcribed set's pairs, then untranscribed audio."""

    def __init__(self, parts):
        self.parts = [part for part in parts if len(part)]
        self.offsets = np.cumsum([0, *map(len, self.parts)])
        self.lengths = np.concatenate([part.lengths for part in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, k: int):
        j = int(np.searchsorted(self.offsets, k, side="right")) - 1
        return self.parts[j], k - int(self.offsets[j])

    def utt(self, k: int) -> str:
        part, i = self._locate(k)
        return part.utt(i)

    def pair(self, k: int, epoch: int) -> tuple[str, np.ndarray, np.ndarray]:
        part, i = self._locate(k)
        return part.pair(i, epoch)


def audio_table(data_dir: str | Path, utts) -> dict[str, tuple[str, float, float | None]]:
    """(wav.scp entry, start, end) of each of ``utts`` that the Kaldi data directory ``data_dir`` holds."""
    from .datadir import DataDir

    data = DataDir.load(data_dir)
    known = set(data.utterances)
    return {u: data.entry(u) for u in utts if u in known}
