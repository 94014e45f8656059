"""Feature data sets for training and decoding: normalized features, token targets, padded batches.

A feature directory (``data/<corpus>/<feat>/<set>/``) holds ``feats.scp``,
``utt2num_frames``, ``text``, ``utt2spk`` and per-speaker CMVN statistics in
``cmvn.scp``. :class:`FeatureSet` reads one, normalizes it (:mod:`speechrecipe.cmvn`)
and encodes its transcripts; :func:`collate` pads a batch of it. :func:`parallel_set`
pairs a noisy copy with its clean set, by utterance id, for the denoising autoencoder.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .archive import read_matrices
from .cmvn import load_speaker_stats, normalize
from .fileio import read_table

log = logging.getLogger(__name__)


@dataclass
class Utterance:
    utt: str
    feats: np.ndarray  # (frames, dim), normalized
    tokens: list[int]
    text: str


class FeatureSet:
    """The normalized features (held in memory) and token targets of one feature directory."""

    def __init__(
        self,
        feat_dir: str | Path,
        cmvn: str,
        tokenizer=None,
        global_mean_std: tuple[np.ndarray, np.ndarray] | None = None,
        min_frames: int = 1,
        subsampling_factor: int = 1,
        max_frames: int | None = None,
    ):
        feat_dir = Path(feat_dir)
        self.feat_dir = feat_dir
        text = read_table(feat_dir / "text")
        utt2spk = read_table(feat_dir / "utt2spk")
        speaker_stats = load_speaker_stats(feat_dir) if cmvn == "speaker" else {}
        if tokenizer is not None:
            check_token_coverage(feat_dir / "text", tokenizer)
        self.utterances: list[Utterance] = []
        dropped_short, dropped_long = [], []
        for utt, feats in read_matrices(feat_dir / "feats.scp"):
            feats = np.asarray(feats, dtype=np.float32)
            tokens = tokenizer.encode(text[utt]) if tokenizer else []
            # CTC needs at least one output frame per token, plus one between repeated tokens.
            needed = len(tokens) + sum(a == b for a, b in itertools.pairwise(tokens))
            if len(feats) < min_frames or len(feats) // subsampling_factor < needed:
                dropped_short.append(utt)
                continue
            if max_frames and len(feats) > max_frames:
                dropped_long.append(utt)
                continue
            feats = normalize(feats, cmvn, speaker_stats.get(utt2spk.get(utt)), global_mean_std)
            self.utterances.append(Utterance(utt, feats, tokens, text[utt]))
        if dropped_short:
            # Like ESPnet's stage 4 (remove_longshortdata): filtered, with a count, never silently.
            log.warning(
                "%s: dropped %d of %d utterance(s) too short for their transcript after %dx subsampling (e.g. %s)",
                feat_dir,
                len(dropped_short),
                len(self.utterances) + len(dropped_short) + len(dropped_long),
                subsampling_factor,
                ", ".join(dropped_short[:3]),
            )
        if dropped_long:
            log.warning("%s: dropped %d utterance(s) longer than %d frames", feat_dir, len(dropped_long), max_frames)
        if not self.utterances:
            raise ValueError(f"{feat_dir}: no usable utterances (all were too short or too long)")

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def dim(self) -> int:
        return self.utterances[0].feats.shape[1]

    def total_frames(self) -> int:
        return sum(len(u.feats) for u in self.utterances)


class TokenCoverageError(ValueError):
    """Transcripts hold characters the tokenizer cannot represent (they would silently become <unk>)."""


def check_token_coverage(text_path: str | Path, tokenizer) -> None:
    """Fail, naming file, line and characters, when a transcript uses characters outside the token set.

    The tokenizer covers every character of the training text, so this catches a dev or extra
    training set written in another script, case or normalization than the training set: its
    targets would be <unk>, and the model would be trained and selected on them without a word.
    Checked when the data is loaded, before the first epoch.
    """
    problems = []
    with open(text_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            utt, _, transcript = line.rstrip("\n").partition(" ")
            unknown = tokenizer.unknown_characters(transcript)
            if unknown:
                problems.append(
                    f"{text_path} line {number}: utterance '{utt}' has character(s) "
                    f"{' '.join(repr(c) for c in sorted(unknown))} outside the token set"
                )
    if problems:
        more = f"\n... and {len(problems) - 10} more line(s)." if len(problems) > 10 else ""
        raise TokenCoverageError(
            f"{len(problems)} transcript(s) use characters the tokenizer (trained on the training set's text) "
            "cannot represent:\n" + "\n".join(problems[:10]) + more + "\nFix: normalize these transcripts like "
            "the training text (case, punctuation, digits as words) in the data directory this set comes from, "
            "or add text containing the characters to the training set."
        )


def collate(utterances: list[Utterance]):
    """Pad a list of utterances into (feats, feat_lengths, targets, target_lengths) tensors."""
    lengths = torch.tensor([len(u.feats) for u in utterances])
    feats = torch.zeros(len(utterances), int(lengths.max()), utterances[0].feats.shape[1])
    for i, u in enumerate(utterances):
        feats[i, : len(u.feats)] = torch.from_numpy(u.feats)
    targets = torch.tensor([t for u in utterances for t in u.tokens], dtype=torch.long)
    target_lengths = torch.tensor([len(u.tokens) for u in utterances])
    return feats, lengths, targets, target_lengths


@dataclass
class ParallelUtterance:
    utt: str
    noisy: np.ndarray
    clean: np.ndarray


def parallel_set(noisy: FeatureSet, clean: FeatureSet) -> list[ParallelUtterance]:
    """(noisy, clean) feature pairs by utterance id; a pair whose frame counts differ is dropped with a warning."""
    clean_by_id = {u.utt: u.feats for u in clean.utterances}
    pairs, unmatched = [], []
    for u in noisy.utterances:
        target = clean_by_id.get(u.utt)
        if target is None or len(target) != len(u.feats):
            unmatched.append(u.utt)
            continue
        pairs.append(ParallelUtterance(u.utt, u.feats, target))
    if unmatched:
        log.warning(
            "%s: %d noisy utterance(s) without a clean twin of the same length in %s (e.g. %s)",
            noisy.feat_dir,
            len(unmatched),
            clean.feat_dir,
            ", ".join(unmatched[:3]),
        )
    if not pairs:
        raise ValueError(
            f"{noisy.feat_dir} and {clean.feat_dir} share no utterance: the DAE needs a noisy copy "
            "of the clean set (same utterance ids)"
        )
    return pairs


def collate_pairs(pairs: list[ParallelUtterance]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(p.noisy) for p in pairs])
    dim = pairs[0].noisy.shape[1]
    noisy = torch.zeros(len(pairs), int(lengths.max()), dim)
    clean = torch.zeros_like(noisy)
    for i, p in enumerate(pairs):
        noisy[i, : len(p.noisy)] = torch.from_numpy(p.noisy)
        clean[i, : len(p.clean)] = torch.from_numpy(p.clean)
    return noisy, clean, lengths
