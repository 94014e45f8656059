#!/usr/bin/env python3
"""Streaming against offline WER (and float against int8) of a trained model on a Kaldi data directory.

    .venv/bin/python bench/streaming_wer.py exp/fsdd_lstm_streaming data/fsdd/test [--int8] [--chunk-seconds 0.2]

Each recording of DATA_DIR's wav.scp is recognized twice with greedy search: offline (the whole
recording through the network at once, as asr-transcribe does) and as a live stream (chunks of
--chunk-seconds through speechrecipe.streaming, as asr-serve does, endpointing off so that one
recording is one utterance). Prints both WERs and CERs against DATA_DIR/text, how many
hypotheses are identical, and each real-time factor (on whatever else the machine is doing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from speechrecipe.endpoint import EndpointConfig
from speechrecipe.fileio import read_table
from speechrecipe.inputs import collect_inputs
from speechrecipe.recognizer import Recognizer
from speechrecipe.scoring import score
from speechrecipe.streaming import StreamingRecognizer
from speechrecipe.transcriber import Transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("data_dir")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantization of the model")
    parser.add_argument("--chunk-seconds", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.model, quantize=args.int8)
    transcriber = Transcriber(recognizer, method="greedy")
    refs = read_table(Path(args.data_dir) / "text")
    no_endpoint = EndpointConfig(trailing_silence=0, silence_timeout=0, max_utterance=0)
    offline, streamed, seconds = {}, {}, {"offline": 0.0, "streaming": 0.0, "audio": 0.0}
    for source in collect_inputs([args.data_dir]):
        samples, rate = source.read()
        seconds["audio"] += len(samples) / rate
        started = time.perf_counter()
        offline[source.utt] = transcriber.decode_text(samples, rate)
        seconds["offline"] += time.perf_counter() - started
        started = time.perf_counter()
        stream = StreamingRecognizer(recognizer, rate, no_endpoint, words=False)
        chunk = max(1, int(rate * args.chunk_seconds))
        for start in range(0, len(samples), chunk):
            stream.accept_waveform(samples[start : start + chunk])
        streamed[source.utt] = stream.final_result().text
        seconds["streaming"] += time.perf_counter() - started
    same = sum(offline[u] == streamed[u] for u in offline)
    kind = "int8" if args.int8 else "float"
    print(f"{args.model} ({kind}) on {args.data_dir}: {len(offline)} recordings, {seconds['audio']:.1f} s of audio")
    for name, hyps in (("offline", offline), ("streaming", streamed)):
        result = score(refs, hyps)
        rtf = seconds[name] / seconds["audio"]
        print(f"  {name:9s} {result.wer.kaldi_line('WER')}  {result.cer.kaldi_line('CER')}  RTF {rtf:.4f}")
    print(f"  identical hypotheses: {same} / {len(offline)}")


if __name__ == "__main__":
    main()
