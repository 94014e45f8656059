"""Feature data sets for training and decoding: CMVN, token targets, length-bucketed batches.

A feature directory (``data/<corpus>/<feat>/<set>/``) holds ``feats.scp``,
``utt2num_frames``, ``text``, ``utt2spk`` and per-speaker CMVN statistics in
``cmvn.scp``. Normalization is one of

- ``global``: mean and variance of the whole training set (stored in the model);
- ``speaker``: each speaker's own statistics (Kaldi's default ``apply-cmvn``),
  which removes much of what differs between voices and channels;
- ``utterance``: each utterance's own statistics (works on any single file);
- ``none``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from .features import ArchiveError, archive_of, load_matrix, stats_to_mean_std
from .fileio import read_table

log = logging.getLogger(__name__)

CMVN_MODES = ("global", "speaker", "utterance", "none")


def load_speaker_stats(feat_dir: str | Path) -> dict[str, np.ndarray]:
    return {spk: np.asarray(m) for spk, m in kaldiio.load_scp(str(Path(feat_dir) / "cmvn.scp")).items()}


def global_stats(feat_dir: str | Path) -> np.ndarray:
    """The training set's global CMVN statistics: the sum of its speakers' statistics."""
    return sum(load_speaker_stats(feat_dir).values())


def normalize(feats: np.ndarray, mode: str, speaker_stats: np.ndarray | None = None,
              global_mean_std: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    if mode == "none":
        return feats
    if mode == "global":
        mean, std = global_mean_std
    elif mode == "speaker":
        mean, std = stats_to_mean_std(speaker_stats)
    elif mode == "utterance":
        mean, std = feats.mean(axis=0), np.sqrt(np.maximum(feats.var(axis=0), 1e-10))
    else:
        raise ValueError(f"unknown CMVN mode '{mode}' (use one of {', '.join(CMVN_MODES)})")
    return ((feats - mean) / std).astype(np.float32)


@dataclass
class Utterance:
    utt: str
    feats: np.ndarray  # (frames, dim), normalized
    tokens: list[int]
    text: str


class FeatureSet:
    """The normalized features (held in memory) and token targets of one feature directory."""

    def __init__(self, feat_dir: str | Path, cmvn: str, tokenizer=None,
                 global_mean_std: tuple[np.ndarray, np.ndarray] | None = None,
                 min_frames: int = 1, subsampling_factor: int = 1, max_frames: int | None = None):
        feat_dir = Path(feat_dir)
        self.feat_dir = feat_dir
        text = read_table(feat_dir / "text")
        utt2spk = read_table(feat_dir / "utt2spk")
        speaker_stats = load_speaker_stats(feat_dir) if cmvn == "speaker" else {}
        if tokenizer is not None:
            check_token_coverage(feat_dir / "text", tokenizer)
        self.utterances: list[Utterance] = []
        dropped_short, dropped_long = [], []
        for utt, feats in _load_features(feat_dir / "feats.scp"):
            feats = np.asarray(feats, dtype=np.float32)
            tokens = tokenizer.encode(text[utt]) if tokenizer else []
            # CTC needs at least one output frame per token, plus one between repeated tokens.
            needed = len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))
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
            log.warning("%s: dropped %d of %d utterance(s) too short for their transcript after %dx subsampling "
                        "(e.g. %s)", feat_dir, len(dropped_short), len(self.utterances) + len(dropped_short)
                        + len(dropped_long), subsampling_factor, ", ".join(dropped_short[:3]))
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
                problems.append(f"{text_path} line {number}: utterance '{utt}' has character(s) "
                                f"{' '.join(repr(c) for c in sorted(unknown))} outside the token set")
    if problems:
        more = f"\n... and {len(problems) - 10} more line(s)." if len(problems) > 10 else ""
        raise TokenCoverageError(
            f"{len(problems)} transcript(s) use characters the tokenizer (trained on the training set's text) "
            "cannot represent:\n" + "\n".join(problems[:10]) + more + "\nFix: normalize these transcripts like "
            "the training text (case, punctuation, digits as words) in the data directory this set comes from, "
            "or add text containing the characters to the training set.")


def _load_features(scp: Path):
    """(utt, matrix) of a feats.scp, read sequentially (one open file per archive).

    A damaged archive (truncated by a full disk or a copy cut short: never by a killed job,
    whose outputs appear only when complete) is not used: the damaged job archive, its index
    and the set's feats.scp are removed, so that running the same snakemake command again
    extracts that job's features again, and the error says so.
    """
    try:
        yield from kaldiio.load_scp_sequential(str(scp))
    except Exception as e:  # noqa: BLE001 - kaldiio raises many types for a damaged archive
        damaged = _find_damaged_archive(scp)
        if damaged is None:
            raise ValueError(f"{scp}: cannot be read ({type(e).__name__}: {e})") from e
        archive, problem = damaged
        removed = [p for p in (scp, archive.with_suffix(".scp"), archive) if p.exists()]
        for path in removed:
            path.unlink()
        raise ArchiveError(
            f"{problem}. Not used: removed {', '.join(map(str, removed))}. Fix: run the same snakemake command "
            "again; it extracts these features again (by hand: make_features.py for that job, then "
            "gather_features.py).") from e


def _find_damaged_archive(scp: Path) -> tuple[Path, str] | None:
    """(archive, what is wrong) for the first entry of ``scp`` that cannot be read, or None."""
    for entry in read_table(scp).values():
        try:
            load_matrix(entry)
        except ArchiveError as e:
            return archive_of(entry), str(e)
    return None


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


def collate(utterances: list[Utterance]):
    """Pad a list of utterances into (feats, feat_lengths, targets, target_lengths) tensors."""
    lengths = torch.tensor([len(u.feats) for u in utterances])
    feats = torch.zeros(len(utterances), int(lengths.max()), utterances[0].feats.shape[1])
    for i, u in enumerate(utterances):
        feats[i, : len(u.feats)] = torch.from_numpy(u.feats)
    targets = torch.tensor([t for u in utterances for t in u.tokens], dtype=torch.long)
    target_lengths = torch.tensor([len(u.tokens) for u in utterances])
    return feats, lengths, targets, target_lengths


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator,
                 freq_masks: int = 2, freq_width: int = 15, time_masks: int = 2, time_width: float = 0.05) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) without time warping: zero random bands of frequency and time.

    Time masks are at most ``time_width`` of each utterance long. Masked values
    are set to 0, the mean of normalized features.
    """
    feats = feats.clone()
    batch, _, dim = feats.shape
    for b in range(batch):
        n = int(lengths[b])
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, dim - width), (1,), generator=generator))
            feats[b, :, start:start + width] = 0.0
        for _ in range(time_masks):
            width = int(torch.randint(0, max(1, int(time_width * n)) + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, n - width), (1,), generator=generator))
            feats[b, start:start + width, :] = 0.0
    return feats
