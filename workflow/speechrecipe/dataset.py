"""Feature data sets for training and decoding: an index in memory, features read on demand.

A feature directory (``data/<corpus>/<feat>/<set>/``) holds ``feats.scp``,
``utt2num_frames``, ``text``, ``utt2spk`` and per-speaker CMVN statistics in
``cmvn.scp``. :class:`FeatureSet` keeps only its index in memory (utterance ids,
archive offsets, frame counts, speakers, token targets: tens of bytes per
utterance), so that memory does not grow with the corpus; a matrix is read,
normalized (:mod:`speechrecipe.cmvn`) and returned when a batch asks for it.
``in_memory=True`` reads and keeps every normalized matrix once instead (the
same values: for small sets read many times).

:func:`collate` pads a batch; :class:`PairedSet` pairs a noisy copy with its clean
set, by utterance id, for the denoising autoencoder.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .archive import check_archives, load_matrix
from .cmvn import load_speaker_stats, normalize
from .fileio import read_table

log = logging.getLogger(__name__)


@dataclass
class Utterance:
    utt: str
    feats: np.ndarray  # (frames, dim), normalized
    tokens: list[int]
    text: str


class TokenCoverageError(ValueError):
    """Transcripts hold characters the tokenizer cannot represent (they would silently become <unk>)."""


class FeatureSet:
    """The index of one or more feature directories, and their utterances on demand.

    Utterances too short for their transcript after subsampling (CTC needs one output frame per
    token, plus one between repeated tokens) or longer than ``max_frames`` are left out, with a
    count in the log, like ESPnet's stage 4 (remove_longshortdata).
    """

    def __init__(
        self,
        feat_dir: str | Path,
        cmvn: str,
        tokenizer=None,
        global_mean_std: tuple[np.ndarray, np.ndarray] | None = None,
        min_frames: int = 1,
        subsampling_factor: int = 1,
        max_frames: int | None = None,
        in_memory: bool = False,
    ):
        feat_dir = Path(feat_dir)
        self.feat_dir = feat_dir
        self.cmvn, self.global_mean_std = cmvn, global_mean_std
        if tokenizer is not None:
            check_token_coverage(feat_dir / "text", tokenizer)
        entries = read_table(feat_dir / "feats.scp")
        frames = read_table(feat_dir / "utt2num_frames")
        text = read_table(feat_dir / "text")
        utt2spk = read_table(feat_dir / "utt2spk")
        self.speaker_stats = load_speaker_stats(feat_dir) if cmvn == "speaker" else {}
        self.utts: list[str] = []
        self.entries: list[str] = []
        self.texts: list[str] = []
        self.speakers: list[str] = []
        lengths, tokens = [], []
        dropped_short, dropped_long = [], []
        for utt in sorted(entries, key=lambda u: u.encode("utf-8")):
            n = int(frames[utt])
            ids = tokenizer.encode(text[utt]) if tokenizer else []
            needed = len(ids) + sum(a == b for a, b in itertools.pairwise(ids))
            if n < min_frames or n // subsampling_factor < needed:
                dropped_short.append(utt)
                continue
            if max_frames and n > max_frames:
                dropped_long.append(utt)
                continue
            self.utts.append(utt)
            self.entries.append(entries[utt])
            self.texts.append(text[utt])
            self.speakers.append(utt2spk.get(utt, utt))
            lengths.append(n)
            tokens.append(ids)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.token_offsets = np.cumsum([0, *map(len, tokens)], dtype=np.int64)
        self.tokens_flat = np.fromiter(
            itertools.chain.from_iterable(tokens), dtype=np.int32, count=int(self.token_offsets[-1])
        )
        self.dropped_short, self.dropped_long = len(dropped_short), len(dropped_long)
        self._report_dropped(dropped_short, dropped_long, subsampling_factor, max_frames)
        if not self.utts:
            raise ValueError(
                f"{feat_dir}: no usable utterances: {len(dropped_short)} too short for their "
                f"transcripts after {subsampling_factor}x subsampling, {len(dropped_long)} longer than "
                f"{max_frames} frames"
            )
        check_archives(entries.values())
        self._cache: list[Utterance] | None = None
        if in_memory:
            self._cache = [self._read(i) for i in range(len(self))]

    def _report_dropped(self, short, long, subsampling_factor, max_frames) -> None:
        if short:
            log.warning(
                "%s: dropped %d of %d utterance(s) too short for their transcript after %dx subsampling (e.g. %s)",
                self.feat_dir,
                len(short),
                len(self.utts) + len(short) + len(long),
                subsampling_factor,
                ", ".join(short[:3]),
            )
        if long:
            log.warning("%s: dropped %d utterance(s) longer than %d frames", self.feat_dir, len(long), max_frames)

    def __len__(self) -> int:
        return len(self.utts)

    def tokens(self, i: int) -> list[int]:
        return self.tokens_flat[self.token_offsets[i] : self.token_offsets[i + 1]].tolist()

    def _read(self, i: int) -> Utterance:
        feats = np.asarray(load_matrix(self.entries[i]), dtype=np.float32)
        feats = normalize(feats, self.cmvn, self.speaker_stats.get(self.speakers[i]), self.global_mean_std)
        return Utterance(self.utts[i], feats, self.tokens(i), self.texts[i])

    def __getitem__(self, i: int) -> Utterance:
        """Utterance ``i``: its matrix read from its archive and normalized (or kept, with in_memory)."""
        return self._cache[i] if self._cache is not None else self._read(i)

    def load(self, indices) -> list[Utterance]:
        return [self[i] for i in indices]

    @property
    def utterances(self) -> list[Utterance]:
        """Every utterance, read now (or kept, with in_memory): for small sets and tests."""
        return self._cache if self._cache is not None else self.load(range(len(self)))

    @property
    def dim(self) -> int:
        return self[0].feats.shape[1]

    def total_frames(self) -> int:
        return int(self.lengths.sum())

    def extend(self, other: FeatureSet) -> None:
        """Add another set's utterances (extra training data with the same features and normalization)."""
        if (self._cache is None) != (other._cache is None):
            raise ValueError("cannot mix a set held in memory with one read from disk")
        for name in ("utts", "entries", "texts", "speakers"):
            getattr(self, name).extend(getattr(other, name))
        self.speaker_stats = {**self.speaker_stats, **other.speaker_stats}
        self.token_offsets = np.concatenate([self.token_offsets, self.token_offsets[-1] + other.token_offsets[1:]])
        self.tokens_flat = np.concatenate([self.tokens_flat, other.tokens_flat])
        self.lengths = np.concatenate([self.lengths, other.lengths])
        if self._cache is not None:
            self._cache = self._cache + other._cache


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


class PairedSet:
    """(noisy, clean) pairs of the same utterances, by id, for the denoising autoencoder; read on demand.

    A noisy utterance whose clean twin is missing or of another length is left out, with a warning.
    """

    def __init__(self, noisy: FeatureSet, clean: FeatureSet):
        self.noisy, self.clean = noisy, clean
        clean_index = {u: i for i, u in enumerate(clean.utts)}
        self.pairs: list[tuple[int, int]] = []
        unmatched = []
        for i, utt in enumerate(noisy.utts):
            j = clean_index.get(utt)
            if j is None or clean.lengths[j] != noisy.lengths[i]:
                unmatched.append(utt)
            else:
                self.pairs.append((i, j))
        if unmatched:
            log.warning(
                "%s: %d noisy utterance(s) without a clean twin of the same length in %s (e.g. %s)",
                noisy.feat_dir,
                len(unmatched),
                clean.feat_dir,
                ", ".join(unmatched[:3]),
            )
        if not self.pairs:
            raise ValueError(
                f"{noisy.feat_dir} and {clean.feat_dir} share no utterance: the DAE needs a noisy copy "
                "of the clean set (same utterance ids)"
            )
        self.lengths = noisy.lengths[[i for i, _ in self.pairs]]

    def __len__(self) -> int:
        return len(self.pairs)

    def utt(self, k: int) -> str:
        return self.noisy.utts[self.pairs[k][0]]

    def __getitem__(self, k: int) -> tuple[str, np.ndarray, np.ndarray]:
        """(utterance id, noisy features, clean features) of pair ``k``."""
        i, j = self.pairs[k]
        return self.noisy.utts[i], self.noisy[i].feats, self.clean[j].feats

    def pair(self, k: int, epoch: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Pair ``k``, the same in every epoch (the interface of :class:`speechrecipe.onthefly.MixedPairs`)."""
        return self[k]


def collate_pairs(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(noisy) for _, noisy, _ in pairs])
    dim = pairs[0][1].shape[1]
    noisy_batch = torch.zeros(len(pairs), int(lengths.max()), dim)
    clean_batch = torch.zeros_like(noisy_batch)
    for i, (_, noisy, clean) in enumerate(pairs):
        noisy_batch[i, : len(noisy)] = torch.from_numpy(noisy)
        clean_batch[i, : len(clean)] = torch.from_numpy(clean)
    return noisy_batch, clean_batch, lengths


# Below these a training set cannot teach a randomly initialised acoustic model anything worth a run (a
# 20-utterance corpus of single words, about 10 s, still trains); fine-tuning a trained model is not bound.
MIN_TRAINING_UTTERANCES = 8
MIN_TRAINING_SECONDS = 5.0


def trainability_problems(
    data: FeatureSet, subsampling_factor: int, frame_shift_ms: float, from_scratch: bool = True
) -> list[str]:
    """What makes a training set unfit to train on, each with what to change; empty when it is fit."""
    problems = []
    total = len(data) + data.dropped_short + data.dropped_long
    if data.dropped_short > total / 2:
        problems.append(
            f"{data.dropped_short} of {total} training utterances are too short for their transcripts after "
            f"{subsampling_factor}x subsampling (CTC needs an output frame per token, and one between repeated "
            "tokens). Fix: am.model.subsampling_factor: 2 (or subsampling: none), or fewer, longer units "
            "(tokens.type: unigram with a larger vocab_size)."
        )
    seconds = data.total_frames() * frame_shift_ms / 1000
    if from_scratch and (len(data) < MIN_TRAINING_UTTERANCES or seconds < MIN_TRAINING_SECONDS):
        problems.append(
            f"the training set has {len(data)} usable utterance(s), {seconds:.1f} s of speech: too little to train "
            f"an acoustic model (at least {MIN_TRAINING_UTTERANCES} utterances and {MIN_TRAINING_SECONDS:g} s). "
            "Fix: add training data, or train on it together with a larger corpus (am.extra_train) or start from "
            "a trained model (am.init)."
        )
    return problems
