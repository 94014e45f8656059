"""Recognition of live audio: samples come in chunk by chunk, partial and final results go out.

A :class:`StreamingRecognizer` is one audio stream (one connection of ``asr-serve``), with the
calls of Vosk's recognizer: :meth:`~StreamingRecognizer.accept_waveform` takes the next chunk
and says whether an utterance has just ended (:mod:`speechrecipe.endpoint`), ``partial()`` is
the text of the utterance going on, ``result()`` the last ended one with its word times, and
``final_result()`` ends the stream. The utterances of a stream follow each other; each one is
recognized as if it were a recording of its own (fresh normalization and LSTM state), which is
what the model saw in training.

How a chunk becomes text in a streaming model (unidirectional LSTMs, ``stack`` subsampling, CMVN
``online``, ``global`` or ``none``; see :attr:`speechrecipe.model.network.CTCModel.streamable`):

- :class:`StreamingResampler` brings the stream to the model's rate with torchaudio's
  windowed-sinc filter, computed block by block as the samples arrive;
- :class:`FeatureStream` computes Kaldi frames as soon as their window is complete (with
  snip-edges framing each frame is its own window of samples, so nothing is recomputed);
- :class:`speechrecipe.cmvn.OnlineCMVN` normalizes them causally;
- :meth:`CTCModel.step <speechrecipe.model.network.CTCModel.step>` runs the network on whole
  stacks of frames, carrying each LSTM layer's state, so a chunk costs the same at any point
  of the utterance;
- greedy CTC decoding merges repeats across chunk boundaries.

This is the computation of the offline path (the decode stage, ``asr-transcribe``) on the same
audio, frame for frame: the same frames, the same normalization, the same network. Only the
sizes of the matrix products differ (a chunk's frames instead of the utterance's), and a BLAS
product's last bits can depend on them: streamed features differ from one-pass ones by ~1e-6
(fbank) to ~5e-5 (MFCC); the LSTM state carry itself was bit-exact here. The decoded text is
the same (``tests/test_streaming.py`` checks it on real recordings).

A bidirectional model (or one normalized with speaker or utterance CMVN, which needs the whole
utterance) cannot run this way: :class:`RedecodingUtterance` decodes all the audio of the
utterance received so far again at every chunk, which costs more as the utterance grows; the
endpointer's ``max_utterance`` (20 s by default) bounds it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .alignment import aligned_words
from .audio import AudioError
from .cmvn import OnlineCMVN, normalize
from .endpoint import EndpointConfig
from .features import compute
from .recognizer import Recognizer
from .transcriber import Transcriber

STREAMABLE_CMVN = ("online", "global", "none")  # causal normalizations: a frame needs nothing after it


def is_streamable(recognizer: Recognizer) -> bool:
    """Whether the model runs as a true stream (else its audio so far is decoded again at every chunk)."""
    return recognizer.model.streamable and recognizer.cmvn_mode in STREAMABLE_CMVN


class StreamingResampler:
    """Resampling of a stream chunk by chunk, giving what ``torchaudio.functional.resample`` gives
    for the whole stream (to float rounding).

    torchaudio's filter is a strided convolution: each block of ``new`` output samples is the
    dot product of ``new`` filters with ``2 * width + orig`` input samples (rates divided by their
    gcd), the input padded with ``width`` zeros in front and ``width + orig`` at the end. So a block
    can be computed as soon as its input has arrived; :meth:`flush` pads the end and cuts the
    output to torchaudio's length.
    """

    def __init__(self, from_rate: int, to_rate: int):
        from torchaudio.functional.functional import _get_sinc_resample_kernel

        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        gcd = math.gcd(self.from_rate, self.to_rate)
        self.orig, self.new = self.from_rate // gcd, self.to_rate // gcd
        if self.from_rate != self.to_rate:
            self.kernel, self.width = _get_sinc_resample_kernel(self.from_rate, self.to_rate, gcd)
        self.pending = np.zeros(getattr(self, "width", 0), dtype=np.float32)  # the front padding
        self.received = 0  # input samples so far
        self.emitted = 0  # output samples so far

    def process(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        self.received += len(samples)
        if self.from_rate == self.to_rate:
            self.emitted += len(samples)
            return samples
        self.pending = np.concatenate([self.pending, samples])
        return self._blocks()

    def flush(self) -> np.ndarray:
        """The last samples, at the end of the stream."""
        if self.from_rate == self.to_rate:
            return np.zeros(0, dtype=np.float32)
        self.pending = np.concatenate([self.pending, np.zeros(self.width + self.orig, dtype=np.float32)])
        out = self._blocks()
        total = math.ceil(self.new * self.received / self.orig)  # torchaudio's output length
        return out[: max(0, total - (self.emitted - len(out)))]

    def _blocks(self) -> np.ndarray:
        span = 2 * self.width + self.orig
        if len(self.pending) < span:
            return np.zeros(0, dtype=np.float32)
        blocks = 1 + (len(self.pending) - span) // self.orig
        used = (blocks - 1) * self.orig + span
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(self.pending[:used]))[None, None]
            out = torch.nn.functional.conv1d(x, self.kernel, stride=self.orig)  # (1, new, blocks)
        self.pending = self.pending[blocks * self.orig :]
        out = out[0].transpose(0, 1).reshape(-1).numpy()
        self.emitted += len(out)
        return out


class FeatureStream:
    """Kaldi features of a stream of samples (at the features' rate), each frame once its window is complete."""

    def __init__(self, recognizer: Recognizer, carried: np.ndarray | None = None):
        self.config = recognizer.feature_config
        self.shift = int(self.config.sample_rate * self.config.frame_shift_ms / 1000)
        self.length = int(self.config.sample_rate * self.config.frame_length_ms / 1000)
        self.pending = np.zeros(0, dtype=np.float32) if carried is None else carried  # from the next frame's start
        self.frames = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The frames (n, dim) that ``samples`` completes."""
        self.pending = np.concatenate([self.pending, samples])
        if len(self.pending) < self.length:
            return np.zeros((0, self.config.dim), dtype=np.float32)
        n = 1 + (len(self.pending) - self.length) // self.shift
        feats = compute(self.pending[: (n - 1) * self.shift + self.length], self.config.sample_rate, self.config)
        self.pending = self.pending[n * self.shift :]
        self.frames += n
        return feats


@dataclass
class UtteranceResult:
    """One ended utterance of a stream: text, word times (seconds from the stream's start) and costs."""

    text: str
    words: list[tuple[str, float, float, float]]  # (word, start, end, confidence)
    start: float  # seconds from the start of the stream
    seconds: float  # audio
    compute_seconds: float  # time spent recognizing it
    endpoint: str  # the rule that ended it, or 'eof' / 'reset'

    @property
    def real_time_factor(self) -> float:
        return self.compute_seconds / self.seconds if self.seconds else 0.0


@dataclass
class BestPath:
    """The greedy decoding of an utterance so far: tokens, and what the endpointer needs."""

    ids: list[int] = field(default_factory=list)
    frames: int = 0  # output frames
    trailing_blanks: int = 0  # blank frames since the last token (or since the start)
    last: int = 0  # the previous frame's best token, to merge repeats across chunks

    def extend(self, best: torch.Tensor) -> None:
        for token in best.tolist():
            if token != self.last and token != 0:
                self.ids.append(token)
            self.trailing_blanks = self.trailing_blanks + 1 if token == 0 else 0
            self.last = token
        self.frames += len(best)


class StreamingUtterance:
    """One utterance of a streaming model: features, normalization and network advance with each chunk."""

    def __init__(self, recognizer: Recognizer, carried: np.ndarray | None = None):
        self.recognizer = recognizer
        self.features = FeatureStream(recognizer, carried)
        self.cmvn = OnlineCMVN(*recognizer.global_mean_std) if recognizer.cmvn_mode == "online" else None
        self.factor = recognizer.model.subsampling_factor
        self.waiting = np.zeros((0, recognizer.feature_config.dim), dtype=np.float32)  # an incomplete stack
        self.state = None
        self.log_probs: list[torch.Tensor] = []
        self.path = BestPath()

    def accept(self, samples: np.ndarray) -> None:
        feats = self.features.process(samples)
        if len(feats):
            feats = self.cmvn.process(feats) if self.cmvn else self._normalize(feats)
            self.waiting = np.concatenate([self.waiting, feats])
            whole = len(self.waiting) - len(self.waiting) % self.factor
            if whole:
                self._step(self.waiting[:whole])
                self.waiting = self.waiting[whole:]

    def finish(self) -> None:
        """The end of the utterance: its last, incomplete stack goes through, padded like the offline model's."""
        if len(self.waiting):
            self._step(self.waiting)
            self.waiting = self.waiting[:0]

    def carry(self) -> np.ndarray:
        """The samples after the last complete frame: they begin the next utterance."""
        return self.features.pending

    @property
    def seconds(self) -> float:
        return self.features.frames * self.features.shift / self.recognizer.feature_config.sample_rate

    def all_log_probs(self) -> torch.Tensor:
        vocab = self.recognizer.model.config.vocab_size
        return torch.cat(self.log_probs) if self.log_probs else torch.zeros(0, vocab)

    def _normalize(self, feats: np.ndarray) -> np.ndarray:
        return normalize(feats, self.recognizer.cmvn_mode, None, self.recognizer.global_mean_std)

    def _step(self, feats: np.ndarray) -> None:
        model = self.recognizer.model
        with torch.inference_mode():
            log_probs, self.state = model.step(torch.from_numpy(feats)[None].to(self.recognizer.device), self.state)
        log_probs = log_probs[0].cpu()
        self.log_probs.append(log_probs)
        self.path.extend(log_probs.argmax(dim=-1))


class RedecodingUtterance:
    """One utterance of a model that needs the whole utterance (bidirectional, or speaker/utterance CMVN):
    everything received so far is decoded again at every chunk, as ``asr-transcribe`` decodes a file."""

    def __init__(self, recognizer: Recognizer, carried: np.ndarray | None = None):
        self.recognizer = recognizer
        self.transcriber = Transcriber(recognizer, method="greedy")
        self.samples = np.zeros(0, dtype=np.float32) if carried is None else carried
        config = recognizer.feature_config
        self.shift = int(config.sample_rate * config.frame_shift_ms / 1000)
        self.length = int(config.sample_rate * config.frame_length_ms / 1000)
        self.path = BestPath()
        self._log_probs = torch.zeros(0, recognizer.model.config.vocab_size)

    def accept(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, samples])
        try:
            feats = self.transcriber.features(self.samples, self.recognizer.feature_config.sample_rate)
        except AudioError:  # not yet one frame (or not yet the model's shortest input)
            return
        self._log_probs = self.transcriber.log_probs(feats)
        self.path = BestPath()
        self.path.extend(self._log_probs.argmax(dim=-1))

    def finish(self) -> None:
        pass  # every chunk already decoded the whole utterance

    def carry(self) -> np.ndarray:
        return self.samples[self._frames() * self.shift :]

    @property
    def seconds(self) -> float:
        return self._frames() * self.shift / self.recognizer.feature_config.sample_rate

    def all_log_probs(self) -> torch.Tensor:
        return self._log_probs

    def _frames(self) -> int:
        return 0 if len(self.samples) < self.length else 1 + (len(self.samples) - self.length) // self.shift


class StreamingRecognizer:
    """One live audio stream at ``sample_rate``: chunks in, partial results, and a result per utterance."""

    def __init__(
        self, recognizer: Recognizer, sample_rate: float, endpoint: EndpointConfig | None = None, words: bool = True
    ):
        if not sample_rate > 0 or sample_rate != int(sample_rate):
            raise ValueError(f"sample rate {sample_rate!r}: give a whole number of samples per second")
        self.recognizer = recognizer
        self.endpoint = endpoint or EndpointConfig()
        self.words = words
        self.resampler = StreamingResampler(int(sample_rate), recognizer.feature_config.sample_rate)
        self.utterance_class = StreamingUtterance if is_streamable(recognizer) else RedecodingUtterance
        self.utterance = self.utterance_class(recognizer)
        self.utterance_start = 0.0  # seconds from the start of the stream
        self.compute_seconds = 0.0  # spent on the current utterance
        self.last_result: UtteranceResult | None = None

    def accept_waveform(self, samples: np.ndarray) -> bool:
        """Take the next chunk (float32 mono in [-1, 1]); True when it ended an utterance (see :meth:`result`)."""
        started = time.perf_counter()
        self.utterance.accept(self.resampler.process(samples))
        self.compute_seconds += time.perf_counter() - started
        # Speech is text: a lone word-boundary piece decoded in a noise decodes to nothing and is not speech.
        rule = self.endpoint.rule_reached(
            self.utterance.seconds,
            self.utterance.path.trailing_blanks * self.recognizer.frame_seconds,
            bool(self.partial().strip()),
        )
        if rule is None:
            return False
        self._end_utterance(rule)
        return True

    def partial(self) -> str:
        """The text of the utterance going on."""
        return self.recognizer.tokenizer.decode(self.utterance.path.ids)

    def result(self) -> UtteranceResult | None:
        """The last utterance that ended."""
        return self.last_result

    def final_result(self, why: str = "eof") -> UtteranceResult:
        """End the utterance going on, with the last samples of the stream ('eof'), and return it.

        With ``why='reset'`` the stream goes on: the next chunk begins a new utterance.
        """
        started = time.perf_counter()
        if why == "eof":
            self.utterance.accept(self.resampler.flush())
        self.compute_seconds += time.perf_counter() - started
        return self._end_utterance(why)

    def _end_utterance(self, why: str) -> UtteranceResult:
        started = time.perf_counter()
        utterance = self.utterance
        utterance.finish()
        ids = utterance.path.ids
        seconds = utterance.seconds
        words = []
        if self.words and ids:
            aligned = aligned_words(
                utterance.all_log_probs(), ids, self.recognizer.tokenizer, self.recognizer.frame_seconds, seconds
            )
            words = [(w, self.utterance_start + s, self.utterance_start + e, c) for w, s, e, c in aligned]
        text = self.recognizer.tokenizer.decode(ids)
        self.utterance = self.utterance_class(self.recognizer, utterance.carry())
        compute_seconds = self.compute_seconds + time.perf_counter() - started
        self.last_result = UtteranceResult(text, words, self.utterance_start, seconds, compute_seconds, why)
        self.utterance_start += seconds
        self.compute_seconds = 0.0
        return self.last_result
