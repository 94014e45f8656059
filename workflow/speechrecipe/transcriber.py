"""From audio to text with a trained model: what ``asr-transcribe`` runs for each file.

Each recording goes through what the model was trained on: resampling to the model's rate,
the same Kaldi features (computed in blocks of frames, which gives the same frames as one
pass), the model's CMVN, then the network and CTC decoding. A model trained with speaker
CMVN has no statistics for the speaker of an arbitrary file, so each file is normalized
with its own (utterance CMVN).

Long recordings go through the network in overlapping chunks: each chunk's
log-probabilities are kept only in its central part (the overlap on each side
is context), the kept parts are concatenated and the whole is decoded at once,
so memory is bounded by the chunk size whatever the length of the recording. A unidirectional
model (:attr:`~speechrecipe.model.network.CTCModel.streamable`) needs no overlap: its chunks go
through one after the other with the LSTM state carried over, which is what one pass computes
and what the streaming server computes (:mod:`speechrecipe.streaming`).
Word times come from CTC forced alignment of the decoded tokens (:mod:`speechrecipe.alignment`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .alignment import word_times
from .audio import AudioError, resample
from .cmvn import accumulate_stats, normalize
from .decoding import BeamSearch, greedy_ids
from .features import compute_in_blocks
from .inputs import Source
from .recognizer import Recognizer


@dataclass
class Transcript:
    utt: str
    text: str
    seconds: float  # audio duration
    words: list[tuple[str, float, float]] | None = None  # (word, start, end) in seconds, with --timings


class Transcriber:
    """Audio -> features -> normalization -> log-probabilities (chunked) -> text, and word times."""

    def __init__(
        self,
        recognizer: Recognizer,
        method: str = "beam",
        beam_size: int = 10,
        chunk_seconds: float = 30.0,
        overlap_seconds: float = 2.0,
        chunk_batch: int = 4,
    ):
        self.recognizer = recognizer
        self.feature_config = recognizer.feature_config
        if self.feature_config.dim != recognizer.model.config.input_dim:
            raise ValueError(
                f"the model's feature config gives {self.feature_config.dim}-dimensional features but "
                f"its network takes {recognizer.model.config.input_dim}: the model was trained without "
                "its feature config (train_am.py --features)"
            )
        if method not in ("beam", "greedy"):
            raise ValueError(f"decoding method '{method}': use beam or greedy")
        self.search = BeamSearch(recognizer.tokenizer.pieces, beam_size) if method == "beam" else None
        model = recognizer.model
        factor = model.subsampling_factor
        frames_per_second = 1000.0 / self.feature_config.frame_shift_ms
        # Chunk edges fall on output-frame boundaries; the overlap covers the subsampling's receptive field.
        self.overlap_frames = factor * max(
            1, math.ceil(overlap_seconds * frames_per_second / factor), math.ceil(model.min_input_frames() / factor)
        )
        self.chunk_frames = factor * math.ceil(chunk_seconds * frames_per_second / factor)
        if self.chunk_frames - 2 * self.overlap_frames < factor:
            raise ValueError(
                f"chunks of {chunk_seconds:g} s leave nothing between two overlaps of "
                f"{overlap_seconds:g} s: make chunks longer than twice the overlap"
            )
        self.chunk_batch = max(1, chunk_batch)

    def raw_features(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Features (frames, dim) of mono audio at any rate, before normalization."""
        samples = resample(samples, rate, self.feature_config.sample_rate)
        feats = compute_in_blocks(samples, self.feature_config)
        if len(feats) < self.recognizer.model.min_input_frames():
            raise AudioError(
                f"too short: {len(feats)} frames, the model needs at least {self.recognizer.model.min_input_frames()}"
            )
        return feats

    def normalized(self, feats: np.ndarray, speaker_stats: np.ndarray | None = None) -> np.ndarray:
        """``feats`` normalized as the model was trained; a speaker-CMVN model without its speaker's statistics
        normalizes with the utterance's own (utterance CMVN)."""
        mode = self.recognizer.cmvn_mode
        if mode == "speaker" and speaker_stats is None:
            mode = "utterance"
        return normalize(feats, mode, speaker_stats, self.recognizer.global_mean_std)

    def features(self, samples: np.ndarray, rate: int, speaker_stats: np.ndarray | None = None) -> np.ndarray:
        """Normalized features (frames, dim) of mono audio at any rate."""
        return self.normalized(self.raw_features(samples, rate), speaker_stats)

    def windows(self, frames: int) -> list[tuple[int, int, int, int]]:
        """(start, end, keep_start, keep_end) in input frames: the chunks and the central part kept of each."""
        if frames <= self.chunk_frames:
            return [(0, frames, 0, frames)]
        hop = self.chunk_frames - 2 * self.overlap_frames
        return [
            (
                max(0, keep - self.overlap_frames),
                min(frames, keep + hop + self.overlap_frames),
                keep,
                min(frames, keep + hop),
            )
            for keep in range(0, frames, hop)
        ]

    def log_probs(self, feats: np.ndarray) -> torch.Tensor:
        """CTC log-probabilities (output frames, vocab) of one normalized utterance, chunk by chunk."""
        if self.recognizer.model.streamable:
            return self.streamed_log_probs(feats)
        factor = self.recognizer.model.subsampling_factor
        windows = self.windows(len(feats))
        kept = []
        for i in range(0, len(windows), self.chunk_batch):
            group = windows[i : i + self.chunk_batch]
            lengths = torch.tensor([end - start for start, end, _, _ in group])
            batch = torch.zeros(len(group), int(lengths.max()), feats.shape[1])
            for row, (start, end, _, _) in enumerate(group):
                batch[row, : end - start] = torch.from_numpy(feats[start:end])
            log_probs, out_lengths = self.recognizer.log_probs(batch, lengths)
            for row, (start, end, keep_start, keep_end) in enumerate(group):
                n = int(out_lengths[row])
                first = (keep_start - start) // factor
                last = n if keep_end == len(feats) else min(n, (keep_end - start) // factor)
                kept.append(log_probs[row, first:last])
        return torch.cat(kept)

    def streamed_log_probs(self, feats: np.ndarray) -> torch.Tensor:
        """A unidirectional model's log-probabilities, chunk after chunk with the LSTM state carried over."""
        model, device = self.recognizer.model, self.recognizer.device
        state, kept = None, []
        with torch.inference_mode():
            for start in range(0, len(feats), self.chunk_frames):  # chunk_frames: whole stacks
                log_probs, state = model.step(
                    torch.from_numpy(feats[start : start + self.chunk_frames])[None].to(device), state
                )
                kept.append(log_probs[0].cpu())
        return torch.cat(kept)

    def decode(self, log_probs: torch.Tensor) -> list[int]:
        lengths = torch.tensor([len(log_probs)])
        return (self.search(log_probs[None], lengths) if self.search else greedy_ids(log_probs[None], lengths))[0]

    def decode_text(self, samples: np.ndarray, rate: int) -> str:
        """The text of mono audio at any rate."""
        return self.recognizer.tokenizer.decode(self.decode(self.log_probs(self.features(samples, rate))))

    def transcribe(self, source: Source, timings: bool = False) -> Transcript:
        samples, rate = source.read()
        return self.transcribe_features(source.utt, self.features(samples, rate), len(samples) / rate, timings)

    def transcribe_all(self, sources: list[Source], timings: bool = False):
        """(source, transcript or the exception that stopped it) of each source, every speaker's together.

        A speaker-CMVN model is applied as in the recipe's decode stage: the utterances of a speaker (known for
        a Kaldi data directory's, from its utt2spk) are normalized with that speaker's statistics over all of
        them, accumulated in utterance-id order like gather_features does, so the text is the decode stage's.
        Any other source, and any other model, goes alone.
        """
        groups: dict = {}
        for source in sources:
            alone = source.speaker is None or self.recognizer.cmvn_mode != "speaker"
            groups.setdefault(("", source.utt) if alone else ("speaker", source.speaker), []).append(source)
        for (kind, _), group in groups.items():
            if kind != "speaker":
                yield from ((s, self._try(self.transcribe, s, timings)) for s in group)
                continue
            raw = {}
            for source in group:
                raw[source.utt] = self._try(self._read_raw, source)
            readable = sorted((u for u, r in raw.items() if not isinstance(r, Exception)), key=lambda u: u.encode())
            stats = accumulate_stats([raw[u][0] for u in readable]) if readable else None
            for source in group:
                if isinstance(raw[source.utt], Exception):
                    yield source, raw[source.utt]
                    continue
                feats, seconds = raw[source.utt]
                yield source, self._try(self.transcribe_speaker_utterance, source.utt, feats, stats, seconds, timings)

    def _read_raw(self, source: Source) -> tuple[np.ndarray, float]:
        samples, rate = source.read()
        return self.raw_features(samples, rate), len(samples) / rate

    def transcribe_speaker_utterance(self, utt, feats, stats, seconds: float, timings: bool) -> Transcript:
        return self.transcribe_features(utt, self.normalized(feats, stats), seconds, timings)

    @staticmethod
    def _try(work, *args):
        try:
            return work(*args)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the others: the caller reports it
            return e

    def transcribe_features(self, utt: str, feats: np.ndarray, seconds: float, timings: bool = False) -> Transcript:
        log_probs = self.log_probs(feats)
        ids = self.decode(log_probs)
        words = (
            word_times(log_probs, ids, self.recognizer.tokenizer, self.recognizer.frame_seconds, seconds)
            if timings
            else None
        )
        return Transcript(utt, self.recognizer.tokenizer.decode(ids), seconds, words)
