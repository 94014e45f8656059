"""Transcribing audio files with a trained model: what ``asr-transcribe`` runs.

    asr-transcribe exp/fsdd_blstm recordings/0_george_0.wav talk.flac more/ data/fsdd/test/wav.scp
    asr-transcribe exp/fsdd_blstm/export/bundle meeting.ogg --ctm meeting.ctm

A model is the ``final`` of an experiment (``exp/<tag>``, or its ``am/final.pt``)
or an exported bundle (``speechrecipe.export``). An input is an audio file in
any format soundfile reads (WAV, FLAC, OGG, MP3, ...; any rate, mono or
stereo), a directory (every audio file under it; a Kaldi data directory is read
through its ``wav.scp`` and ``segments``), or a ``wav.scp``.

Each file goes through what the model was trained on: resampling to the
model's rate, the same Kaldi features (computed in blocks of frames, which
gives the same frames as one pass), the model's CMVN, then the network and CTC
decoding. A model trained with speaker CMVN has no statistics for the speaker
of an arbitrary file, so each file is normalized with its own (utterance CMVN).

Long recordings go through the network in overlapping chunks: each chunk's
log-probabilities are kept only in its central part (the overlap on each side
is context), the kept parts are concatenated and the whole is decoded at once,
so memory is bounded by the chunk size whatever the length of the recording.
Word times come from CTC forced alignment of the decoded tokens.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import AudioError, read_audio, resample
from .dataset import normalize
from .decoding import BeamSearch, Recognizer, greedy_ids
from .features import FeatureConfig, compute
from .fileio import atomic_open, read_table

WORD_BOUNDARY = "\u2581"  # SentencePiece's word-start mark


# --- inputs ------------------------------------------------------------------

def audio_suffixes() -> set[str]:
    """File extensions of the formats soundfile (libsndfile) can read here."""
    import soundfile

    suffixes = {f".{name.lower()}" for name in soundfile.available_formats()} - {".raw"}  # raw needs a header
    return suffixes | {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".sph", ".nist"}


@dataclass
class Source:
    """One thing to transcribe: an utterance id and a ``wav.scp`` entry (path or command), maybe a segment."""

    utt: str
    entry: str
    start: float = 0.0
    end: float | None = None

    def read(self) -> tuple[np.ndarray, int]:
        return read_audio(self.entry, self.start, self.end)


def _utt_id(name: str) -> str:
    return "_".join(name.split()) or "utt"


def _from_wav_scp(wav_scp: Path) -> list[Source]:
    try:
        table = read_table(wav_scp)
    except (OSError, UnicodeDecodeError) as e:
        raise AudioError(f"cannot read '{wav_scp}': {e}") from e
    segments = wav_scp.with_name("segments")
    if wav_scp.name == "wav.scp" and segments.is_file():
        sources = []
        for utt, value in read_table(segments).items():
            recording, start, end = value.split()
            if recording not in table:
                raise AudioError(f"{segments}: recording '{recording}' of '{utt}' is not in {wav_scp}")
            sources.append(Source(utt, table[recording], float(start), float(end)))
        return sources
    return [Source(utt, entry) for utt, entry in table.items()]


def _expand(path: Path, suffixes: set[str]) -> list[Source]:
    if path.is_dir():
        if (path / "wav.scp").is_file():
            return _from_wav_scp(path / "wav.scp")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise AudioError(f"directory '{path}' holds no audio files (.wav, .flac, .ogg, .mp3 or another format "
                             "soundfile reads) and no wav.scp")
        return [Source(_utt_id("-".join(f.relative_to(path).with_suffix("").parts)), str(f)) for f in files]
    if path.name == "wav.scp" or path.suffix == ".scp":
        return _from_wav_scp(path)
    # A file that does not exist is kept: reading it reports the error in the same place as any other.
    return [Source(_utt_id(path.stem if path.suffix.lower() in suffixes else path.name), str(path))]


def collect_inputs(paths, problems: list[str] | None = None) -> list[Source]:
    """The utterances named by the command line: audio files, directories and wav.scp files, in order.

    A file's id is its name without extension (inside a directory, its path
    relative to it with '/' as '-'); repeated ids get a '-N' suffix. An input
    that names nothing readable (an empty directory, a broken wav.scp) raises
    AudioError, or, with a ``problems`` list, is described there and skipped.
    """
    sources: list[Source] = []
    suffixes = audio_suffixes()
    for name in paths:
        try:
            sources += _expand(Path(name), suffixes)
        except (AudioError, ValueError) as e:
            if problems is None:
                raise
            problems.append(str(e))
    seen: dict[str, int] = {}
    for source in sources:
        count = seen.get(source.utt, 0)
        seen[source.utt] = count + 1
        if count:
            source.utt = f"{source.utt}-{count + 1}"
    return sources


# --- model -------------------------------------------------------------------

def load_recognizer(path, device: str = "cpu", with_checkpoint: bool = False):
    """A Recognizer from an experiment directory, a ``final.pt``, an ``am`` directory or a bundle.

    With ``with_checkpoint`` also returns the ``final.pt``-shaped dict it was built from.
    """
    from .checkpoint import load_final

    final = load_final(path)
    recognizer = Recognizer.from_checkpoint(final, device)
    return (recognizer, final) if with_checkpoint else recognizer


# --- features, chunked network, decoding, alignment ------------------------------

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
        raise AudioError(f"too short: {1000 * len(samples) / rate:.0f} ms, less than one "
                         f"{config.frame_length_ms:g} ms frame")
    total = 1 + (len(samples) - length) // shift
    blocks = []
    for first in range(0, total, block_frames):
        last = min(total, first + block_frames)
        blocks.append(compute(samples[first * shift: (last - 1) * shift + length], rate, config))
    return np.concatenate(blocks)


@dataclass
class Transcript:
    utt: str
    text: str
    seconds: float  # audio duration
    words: list[tuple[str, float, float]] | None = None  # (word, start, end) in seconds, with --timings


class Transcriber:
    """Audio -> features -> normalization -> log-probabilities (chunked) -> text, and word times."""

    def __init__(self, recognizer: Recognizer, method: str = "beam", beam_size: int = 10,
                 chunk_seconds: float = 30.0, overlap_seconds: float = 2.0, chunk_batch: int = 4):
        self.recognizer = recognizer
        self.feature_config = FeatureConfig.from_dict(recognizer.feature_config)
        if self.feature_config.dim != recognizer.model.config.input_dim:
            raise ValueError(f"the model's feature config gives {self.feature_config.dim}-dimensional features but "
                             f"its network takes {recognizer.model.config.input_dim}: the model was trained without "
                             "its feature config (train_am.py --features)")
        self.cmvn_mode = "utterance" if recognizer.cmvn_mode == "speaker" else recognizer.cmvn_mode
        if method not in ("beam", "greedy"):
            raise ValueError(f"decoding method '{method}': use beam or greedy")
        self.search = BeamSearch(recognizer.tokenizer.pieces, beam_size) if method == "beam" else None
        model = recognizer.model
        factor = model.subsampling_factor
        frames_per_second = 1000.0 / self.feature_config.frame_shift_ms
        # Chunk edges fall on output-frame boundaries; the overlap covers the subsampling's receptive field.
        self.overlap_frames = factor * max(1, math.ceil(overlap_seconds * frames_per_second / factor),
                                           math.ceil(model.min_input_frames() / factor))
        self.chunk_frames = factor * math.ceil(chunk_seconds * frames_per_second / factor)
        if self.chunk_frames - 2 * self.overlap_frames < factor:
            raise ValueError(f"chunks of {chunk_seconds:g} s leave nothing between two overlaps of "
                             f"{overlap_seconds:g} s: make chunks longer than twice the overlap")
        self.chunk_batch = max(1, chunk_batch)

    def features(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Normalized features (frames, dim) of mono audio at any rate."""
        samples = resample(samples, rate, self.feature_config.sample_rate)
        feats = compute_in_blocks(samples, self.feature_config)
        if len(feats) < self.recognizer.model.min_input_frames():
            raise AudioError(f"too short: {len(feats)} frames, the model needs at least "
                             f"{self.recognizer.model.min_input_frames()}")
        return normalize(feats, self.cmvn_mode, None, self.recognizer.global_mean_std)

    def windows(self, frames: int) -> list[tuple[int, int, int, int]]:
        """(start, end, keep_start, keep_end) in input frames: the chunks and the central part kept of each."""
        if frames <= self.chunk_frames:
            return [(0, frames, 0, frames)]
        hop = self.chunk_frames - 2 * self.overlap_frames
        return [(max(0, keep - self.overlap_frames), min(frames, keep + hop + self.overlap_frames),
                 keep, min(frames, keep + hop)) for keep in range(0, frames, hop)]

    def log_probs(self, feats: np.ndarray) -> torch.Tensor:
        """CTC log-probabilities (output frames, vocab) of one normalized utterance, chunk by chunk."""
        factor = self.recognizer.model.subsampling_factor
        windows = self.windows(len(feats))
        kept = []
        for i in range(0, len(windows), self.chunk_batch):
            group = windows[i: i + self.chunk_batch]
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

    def decode(self, log_probs: torch.Tensor) -> list[int]:
        lengths = torch.tensor([len(log_probs)])
        return (self.search(log_probs[None], lengths) if self.search else greedy_ids(log_probs[None], lengths))[0]

    def word_times(self, log_probs: torch.Tensor, ids: list[int], seconds: float) -> list[tuple[str, float, float]]:
        """(word, start, end) of each word of a hypothesis, from CTC forced alignment, in seconds."""
        if not ids:
            return []
        import torchaudio.functional as AF

        alignment, scores = AF.forced_align(log_probs[None].float().contiguous(),
                                            torch.tensor([ids], dtype=torch.int32), blank=0)
        spans = AF.merge_tokens(alignment[0], scores[0].exp())
        pieces, frame = self.recognizer.tokenizer.pieces, self.recognizer.frame_seconds
        words: list[list] = []  # [token ids, first frame, end frame]
        for span in spans:
            if not words or pieces[span.token].startswith(WORD_BOUNDARY):
                words.append([[span.token], span.start, span.end])
            else:
                words[-1][0].append(span.token)
                words[-1][2] = span.end
        timed = []
        for tokens, first, end in words:
            text = self.recognizer.tokenizer.decode(tokens).strip()
            if text:
                start = min(first * frame, seconds)
                timed.append((text, start, min(max(end * frame, start), seconds)))
        return timed

    def transcribe(self, source: Source, timings: bool = False) -> Transcript:
        samples, rate = source.read()
        log_probs = self.log_probs(self.features(samples, rate))
        ids = self.decode(log_probs)
        seconds = len(samples) / rate
        words = self.word_times(log_probs, ids, seconds) if timings else None
        return Transcript(source.utt, self.recognizer.tokenizer.decode(ids), seconds, words)


def ctm_lines(transcript: Transcript) -> list[str]:
    """Kaldi CTM lines, ``utt channel start duration word``, for one transcript with word times."""
    return [f"{transcript.utt} 1 {start:.2f} {end - start:.2f} {word}" for word, start, end in transcript.words or []]


# --- command line --------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transcribe", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Transcribe audio with a trained model; prints 'utt-id text' lines on stdout and the "
                    "real-time factor on stderr.",
        epilog="""\
MODEL is an experiment directory (exp/<tag>, which uses am/final.pt), a final.pt, or a
bundle made by the recipe's export stage (exp/<tag>/export/bundle).
AUDIO is an audio file in any format soundfile reads (WAV, FLAC, OGG, MP3, ...; any sample
rate; stereo is mixed down), a directory (every audio file in it and below; a Kaldi data
directory through its wav.scp and segments), or a wav.scp file. The utterance id of a file
is its name without extension.

Normalization is the model's CMVN. A model trained with speaker CMVN is applied to each
file with that file's own statistics (utterance CMVN): there is no speaker to take them from.

Files that cannot be read (missing, not audio, empty, shorter than one frame) are named
on stderr and skipped; the others are still transcribed, and the exit status is 1.

examples:
  asr-transcribe exp/fsdd_blstm recordings/0_george_0.wav talk.flac
  asr-transcribe exp/fsdd_blstm/export/bundle recordings/ --method greedy
  asr-transcribe exp/fsdd_blstm data/fsdd/test/wav.scp --ctm test.ctm
  asr-transcribe exp/fsdd_blstm long_talk.ogg --timings > long_talk.ctm""")
    parser.add_argument("model", metavar="MODEL", help="experiment directory, final.pt or model bundle")
    parser.add_argument("audio", metavar="AUDIO", nargs="+", help="audio files, directories or wav.scp files")
    parser.add_argument("--timings", action="store_true",
                        help="print word start and end times (CTC forced alignment) as a Kaldi CTM "
                             "('utt 1 start duration word') instead of the text")
    parser.add_argument("--ctm", metavar="FILE",
                        help="write the same word times to FILE; the text still goes to stdout")
    parser.add_argument("--method", choices=["beam", "greedy"], default="beam",
                        help="CTC search, as in the recipe's decode stage (default: %(default)s)")
    parser.add_argument("--beam-size", type=int, default=10, help="beam search width (default: %(default)s)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="longer recordings go through the network in chunks of this length "
                             "(default: %(default)s)")
    parser.add_argument("--overlap-seconds", type=float, default=2.0,
                        help="context on each side of a chunk, dropped from its output (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    return parser


def _error(message: str) -> None:
    print(f"asr-transcribe: error: {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    try:
        return run(build_parser().parse_args(argv))
    except BrokenPipeError:  # the reader went away (`asr-transcribe ... | head`): stop quietly, like a shell tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        recognizer = load_recognizer(args.model, args.device)
        transcriber = Transcriber(recognizer, args.method, args.beam_size, args.chunk_seconds, args.overlap_seconds)
    except Exception as e:  # noqa: BLE001 - a model that cannot be loaded ends the run with one clear line
        _error(f"{args.model}: {e}" if args.model not in str(e) else str(e))
        return 1
    problems: list[str] = []
    sources = collect_inputs(args.audio, problems)
    for problem in problems:
        _error(problem)
    if recognizer.cmvn_mode == "speaker":
        print("asr-transcribe: the model was trained with speaker CMVN; each file is normalized with its own "
              "statistics (utterance CMVN)", file=sys.stderr)
    timings = args.timings or args.ctm is not None
    ctm: list[str] = []
    failed, audio_seconds = [], 0.0
    started = time.perf_counter()
    for source in sources:
        try:
            transcript = transcriber.transcribe(source, timings=timings)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
            _error(f"{source.utt}: {e}" if source.entry in str(e) else f"{source.utt} ('{source.entry}'): {e}")
            failed.append(source.utt)
            continue
        audio_seconds += transcript.seconds
        lines = ctm_lines(transcript) if args.timings else [f"{transcript.utt} {transcript.text}".rstrip()]
        for line in lines:
            print(line, flush=True)
        if args.ctm is not None:
            ctm += ctm_lines(transcript)
    seconds = time.perf_counter() - started
    if args.ctm is not None:
        with atomic_open(args.ctm) as f:
            f.writelines(line + "\n" for line in ctm)
    done = len(sources) - len(failed)
    rtf = seconds / audio_seconds if audio_seconds else float("nan")
    print(f"asr-transcribe: {done} file(s), {audio_seconds:.1f} s of audio in {seconds:.2f} s: "
          f"real-time factor {rtf:.4f}"
          + (f"; {len(failed)} failed: {' '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}" if failed else "")
          + (f"; {len(problems)} input(s) skipped" if problems else ""),
          file=sys.stderr)
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
