#!/usr/bin/env python3
"""Decoding real-time factor on the CPU, greedy and beam search, of a model trained here first.

    .venv/bin/python bench/decode_rtf.py [--epochs 8] [--beam 8] [--threads 1]

A 2x128 BiLSTM-CTC (conf/fsdd.yaml) is trained for a few epochs on FSDD george, jackson and lucas
(a trained model: the beam search's cost depends on how peaked the posteriors are), then the
unseen speaker nicolas (all 500 recordings) is decoded the way decode.py does it: batches of
normalized features through the network, then the search. The real-time factor is decoding
seconds (network and search; features excluded, as they come from the feature stage) over
seconds of audio. Each method runs twice and the faster run counts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import FEATURES, MODEL, TRAIN, fsdd_sets, global_stats_of

from speechrecipe.batching import bucket_batches
from speechrecipe.config import AMTrainConfig, ModelConfig
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import collate
from speechrecipe.decoding import BeamSearch
from speechrecipe.model import CTCModel
from speechrecipe.recognizer import Recognizer
from speechrecipe.scoring import edit_distance
from speechrecipe.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--beam", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        train_set, test_set, tokenizer, (_, audio) = fsdd_sets(
            ["george", "jackson", "lucas"], ["nicolas"], range(50), scratch
        )
        torch.manual_seed(1)
        model = CTCModel(
            ModelConfig.from_dict({**MODEL, "input_dim": train_set.dim, "vocab_size": tokenizer.vocab_size})
        )
        extra = {
            "tokenizer": tokenizer.model_bytes,
            "cmvn": {"mode": "speaker", "global_stats": torch.from_numpy(global_stats_of(train_set))},
            "feature_config": FEATURES.to_dict(),
        }
        started = time.perf_counter()
        config = AMTrainConfig.from_dict({**TRAIN, "max_epochs": args.epochs})
        final = train(
            CTCTask(model, train_set, test_set, config.specaug),
            scratch / "am",
            config,
            "bench",
            extra,
            device=torch.device("cpu"),
            progress=False,
        )
        print(
            f"trained {args.epochs} epochs on {len(train_set)} utterances in {time.perf_counter() - started:.0f} s; "
            f"decoding {len(test_set)} utterances of an unseen speaker, {audio:.0f} s of audio, "
            f"{args.threads} thread(s)"
        )
        recognizer = Recognizer(final)
        batches = bucket_batches([len(u.feats) for u in test_set.utterances], 20000)  # decode.py's default
        for name, search in (("greedy", None), (f"beam {args.beam}", BeamSearch(tokenizer.pieces, args.beam))):
            best, errors, words = float("inf"), 0, 0
            for _ in range(2):
                hyps = {}
                started = time.perf_counter()
                for batch in batches:
                    utts = [test_set.utterances[i] for i in batch]
                    feats, lengths, _, _ = collate(utts)
                    for u, ids in zip(utts, recognizer.decode_ids(feats, lengths, search)):
                        hyps[u.utt] = tokenizer.decode(ids)
                best = min(best, time.perf_counter() - started)
            for u in test_set.utterances:
                errors += edit_distance(u.text.split(), hyps[u.utt].split())
                words += len(u.text.split())
            print(
                f"{name}: real-time factor {best / audio:.5f} ({best:.2f} s for {audio:.0f} s; WER {100 * errors / words:.1f}%)"
            )


if __name__ == "__main__":
    main()
