"""``asr-transcribe``: transcribe audio files with a trained model.

    asr-transcribe exp/fsdd_blstm recordings/0_george_0.wav talk.flac more/ data/fsdd/test/wav.scp
    asr-transcribe exp/fsdd_blstm/export/bundle meeting.ogg --ctm meeting.ctm

A model is the ``final`` of an experiment (``exp/<tag>``, or its ``am/final.pt``) or an
exported bundle; inputs are described in :mod:`speechrecipe.inputs`, what happens to each
in :mod:`speechrecipe.transcriber`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from ..alignment import ctm_lines
from ..fileio import atomic_open
from ..inputs import collect_inputs
from ..recognizer import Recognizer
from ..transcriber import Transcriber


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transcribe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Transcribe audio with a trained model; prints 'utt-id text' lines on stdout and the "
        "real-time factor on stderr.",
        epilog="""\
MODEL is an experiment directory (exp/<tag>, which uses am/final.pt), a final.pt, or a
bundle made by the recipe's export stage (exp/<tag>/export/bundle).
AUDIO is an audio file in any format soundfile reads (WAV, FLAC, OGG, MP3, ...; any sample
rate; stereo is mixed down), a directory (every audio file in it and below; a Kaldi data
directory through its wav.scp and segments), or a wav.scp file. The utterance id of a file
is its name without extension.

Normalization is the model's CMVN. A model trained with speaker CMVN needs each speaker's
statistics: given a Kaldi data directory (or its wav.scp, with utt2spk beside it), every
speaker's utterances are normalized with that speaker's statistics over all of them, as the
decode stage does, and the text is the decode stage's (use the same --method and --beam-size
as decode.method and decode.beam_size). Files without a known speaker are normalized with
their own statistics (utterance CMVN), which costs accuracy. Global, utterance and no CMVN
need nothing but the file.

Files that cannot be read (missing, not audio, empty, shorter than one frame) are named
on stderr and skipped; the others are still transcribed, and the exit status is 1.

examples:
  asr-transcribe exp/fsdd_blstm recordings/0_george_0.wav talk.flac
  asr-transcribe exp/fsdd_blstm/export/bundle recordings/ --method greedy
  asr-transcribe exp/fsdd_blstm data/fsdd/test/wav.scp --ctm test.ctm
  asr-transcribe exp/fsdd_blstm long_talk.ogg --timings > long_talk.ctm""",
    )
    parser.add_argument("model", metavar="MODEL", help="experiment directory, final.pt or model bundle")
    parser.add_argument("audio", metavar="AUDIO", nargs="+", help="audio files, directories or wav.scp files")
    parser.add_argument(
        "--timings",
        action="store_true",
        help="print word start and end times (CTC forced alignment) as a Kaldi CTM "
        "('utt 1 start duration word') instead of the text",
    )
    parser.add_argument(
        "--ctm", metavar="FILE", help="write the same word times to FILE; the text still goes to stdout"
    )
    parser.add_argument(
        "--method",
        choices=["beam", "greedy"],
        default="beam",
        help="CTC search, as in the recipe's decode stage (default: %(default)s)",
    )
    parser.add_argument("--beam-size", type=int, default=10, help="beam search width (default: %(default)s)")
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=30.0,
        help="longer recordings go through the network in chunks of this length (default: %(default)s)",
    )
    parser.add_argument(
        "--overlap-seconds",
        type=float,
        default=2.0,
        help="context on each side of a chunk, dropped from its output (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="run the LSTM and linear layers with dynamic int8 quantization (CPU; an int8 bundle is always int8)",
    )
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
        recognizer = Recognizer.load(args.model, args.device, quantize=args.int8)
        transcriber = Transcriber(recognizer, args.method, args.beam_size, args.chunk_seconds, args.overlap_seconds)
    except Exception as e:  # noqa: BLE001 - a model that cannot be loaded ends the run with one clear line
        _error(f"{args.model}: {e}" if args.model not in str(e) else str(e))
        return 1
    problems: list[str] = []
    sources = collect_inputs(args.audio, problems)
    for problem in problems:
        _error(problem)
    alone = sum(s.speaker is None for s in sources)
    if recognizer.cmvn_mode == "speaker" and alone:
        print(
            f"asr-transcribe: the model was trained with speaker CMVN; {alone} file(s) without a known speaker (not "
            "from a Kaldi data directory with utt2spk) are normalized with their own statistics (utterance CMVN), "
            "which costs accuracy; give the data directory to normalize each speaker with its own",
            file=sys.stderr,
        )
    timings = args.timings or args.ctm is not None
    ctm: list[str] = []
    failed, audio_seconds = [], 0.0
    started = time.perf_counter()
    for source, transcript in transcriber.transcribe_all(sources, timings=timings):
        if isinstance(transcript, Exception):  # one bad file does not stop the others
            e = transcript
            _error(f"{source.utt}: {e}" if source.entry in str(e) else f"{source.utt} ('{source.entry}'): {e}")
            failed.append(source.utt)
            continue
        audio_seconds += transcript.seconds
        lines = (
            ctm_lines(transcript.utt, transcript.words)
            if args.timings
            else [f"{transcript.utt} {transcript.text}".rstrip()]
        )
        for line in lines:
            print(line, flush=True)
        if args.ctm is not None:
            ctm += ctm_lines(transcript.utt, transcript.words)
    seconds = time.perf_counter() - started
    if args.ctm is not None:
        with atomic_open(args.ctm) as f:
            f.writelines(line + "\n" for line in ctm)
    done = len(sources) - len(failed)
    rtf = seconds / audio_seconds if audio_seconds else float("nan")
    print(
        f"asr-transcribe: {done} file(s), {audio_seconds:.1f} s of audio in {seconds:.2f} s: "
        f"real-time factor {rtf:.4f}"
        + (f"; {len(failed)} failed: {' '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}" if failed else "")
        + (f"; {len(problems)} input(s) skipped" if problems else ""),
        file=sys.stderr,
    )
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
