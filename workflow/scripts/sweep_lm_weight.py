#!/usr/bin/env python3
"""Decode a dev set at several LM weights, score each, keep the best (Kaldi's best_wer).

    python workflow/scripts/sweep_lm_weight.py exp/fsdd/am/final.pt data/fsdd/fbank/dev data/fsdd/dev/text \\
        exp/fsdd/lm/lm.arpa exp/fsdd/lm --weights 0 0.5 1

Writes OUT_DIR/sweep.tsv (weight, wer, errors, words, one row per weight) and OUT_DIR/best_weight
(the weight with the fewest word errors; ties go to the smaller weight). The network runs once;
only the beam search is repeated.
"""

import argparse
import logging
import time
from pathlib import Path

import torch

from speechrecipe.archive import ArchiveError
from speechrecipe.batching import bucket_batches
from speechrecipe.cli import fail_on_damaged_features, section, setup_logging
from speechrecipe.config import DecodeConfig
from speechrecipe.dataset import FeatureSet, collate
from speechrecipe.decoding import BeamSearch
from speechrecipe.fileio import atomic_open, read_table
from speechrecipe.lm import ArpaModel, best_weight
from speechrecipe.recognizer import Recognizer
from speechrecipe.scoring import score

log = logging.getLogger("sweep_lm_weight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("feat_dir")
    parser.add_argument("ref", help="Kaldi text file of the same set")
    parser.add_argument("lm", help="ARPA word n-gram model")
    parser.add_argument("out_dir")
    parser.add_argument("--weights", type=float, nargs="+", required=True)
    parser.add_argument("--word-insertion-penalty", type=float, default=0.0)
    parser.add_argument(
        "--config",
        type=section(DecodeConfig, "decode"),
        default=DecodeConfig(),
        help="decode config: beam_size (JSON or file)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-frames", type=int, default=20000)
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.model)
    batches = []  # (utterance ids, log-probs, output lengths): the network runs once for all weights
    try:
        data = FeatureSet(args.feat_dir, recognizer.cmvn_mode, None, recognizer.global_mean_std)
        for batch in bucket_batches(list(data.lengths), args.batch_frames):
            utts = data.load(batch)
            feats, lengths, _, _ = collate(utts)
            batches.append(([u.utt for u in utts], *recognizer.log_probs(feats, lengths)))
    except ArchiveError as e:
        fail_on_damaged_features(e)
    refs = read_table(args.ref)
    lm = ArpaModel(args.lm)

    errors, rows = {}, []
    for weight in sorted(set(args.weights)):
        started = time.time()
        search = BeamSearch(
            recognizer.tokenizer.pieces,
            args.config.beam_size,
            lm_path=lm,
            lm_weight=weight,
            word_insertion_penalty=args.word_insertion_penalty,
        )
        hyps = {}
        for utts, log_probs, out_lengths in batches:
            for utt, ids in zip(utts, search(log_probs, out_lengths)):
                hyps[utt] = recognizer.tokenizer.decode(ids)
        wer = score(refs, hyps).wer
        errors[weight] = wer.errors
        rows.append(f"{weight:g}\t{wer.rate:.2f}\t{wer.errors}\t{wer.total}")
        log.info("LM weight %g: %s (%.1f s)", weight, wer.kaldi_line(), time.time() - started)
    best = best_weight(errors)
    out = Path(args.out_dir)
    with atomic_open(out / "sweep.tsv") as f:
        f.write("weight\twer\terrors\twords\n" + "\n".join(rows) + "\n")
    with atomic_open(out / "best_weight") as f:
        f.write(f"{best:g}\n")
    log.info(
        "best LM weight on %s: %g (%d errors; word insertion penalty %g)",
        args.feat_dir,
        best,
        errors[best],
        args.word_insertion_penalty,
    )


if __name__ == "__main__":
    main()
