#!/usr/bin/env python3
"""Decode a feature directory with a trained model; write ``utt-id text`` lines.

    python workflow/scripts/decode.py exp/fsdd/am/final.pt data/fsdd/fbank/test exp/fsdd/decode_test/hyp.txt \
        --config '{"method": "beam", "beam_size": 10}'
    python workflow/scripts/decode.py ... --lm exp/fsdd/lm/lm.arpa --lm-weight-file exp/fsdd/lm/best_weight
    python workflow/scripts/decode.py ... --enhance exp/fsdd/dae/final.pt   # DAE-cleaned features
"""

import argparse
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from speechrecipe.archive import ArchiveError
from speechrecipe.batching import bucket_batches
from speechrecipe.cli import fail, fail_on_damaged_features, section, setup_logging
from speechrecipe.config import DecodeConfig
from speechrecipe.dataset import FeatureSet, collate
from speechrecipe.decoding import BeamSearch
from speechrecipe.fileio import write_table
from speechrecipe.recognizer import Recognizer

log = logging.getLogger("decode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("feat_dir")
    parser.add_argument("hyp")
    parser.add_argument(
        "--config",
        type=section(DecodeConfig, "decode"),
        default=DecodeConfig(),
        help="decode config: method, beam_size (JSON or file)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-frames", type=int, default=20000)
    parser.add_argument("--lm", help="ARPA word n-gram model added to the beam search (exp/<tag>/lm/lm.arpa)")
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--lm-weight", type=float, help="LM weight (with --lm)")
    weight.add_argument("--lm-weight-file", help="a file holding the LM weight (exp/<tag>/lm/best_weight)")
    parser.add_argument(
        "--enhance", metavar="DAE", help="a denoising autoencoder's final.pt: decode its clean-feature estimates"
    )
    parser.add_argument(
        "--word-insertion-penalty",
        type=float,
        default=0.0,
        help="added to the score of every word (with --lm; negative discourages insertions)",
    )
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    method = args.config.method
    lm_weight = float(Path(args.lm_weight_file).read_text()) if args.lm_weight_file else args.lm_weight
    if args.lm and (method != "beam" or lm_weight is None):
        fail("--lm needs the beam search (config method: beam) and --lm-weight or --lm-weight-file")
    recognizer = Recognizer.load(args.model)
    try:
        data = FeatureSet(args.feat_dir, recognizer.cmvn_mode, None, recognizer.global_mean_std)
    except ArchiveError as e:
        fail_on_damaged_features(e)
    search = (
        BeamSearch(
            recognizer.tokenizer.pieces,
            args.config.beam_size,
            lm_path=args.lm,
            lm_weight=lm_weight or 0.0,
            word_insertion_penalty=args.word_insertion_penalty,
        )
        if method == "beam"
        else None
    )
    if args.lm:
        method = "beam+lm"
        log.info(
            "decoding with the language model %s (%d-gram, %d unigrams): weight %g, word insertion penalty %g",
            args.lm,
            search.word_lm.model.order,
            len(search.word_lm.model.vocab),
            lm_weight,
            args.word_insertion_penalty,
        )
    enhancer = None
    if args.enhance:
        from speechrecipe.model.files import load_dae

        enhancer = load_dae(args.enhance)
        log.info(
            "features enhanced by the DAE %s (%d LSTM layer(s)) before decoding", args.enhance, enhancer.config.layers
        )
    hyps = {}
    started = time.time()
    for batch in tqdm(bucket_batches(list(data.lengths), args.batch_frames), desc="decode", mininterval=5):
        try:
            utts = data.load(batch)
        except ArchiveError as e:  # damaged inside (check_archives found its end intact)
            fail_on_damaged_features(e)
        feats, lengths, _, _ = collate(utts)
        if enhancer is not None:
            with torch.no_grad():
                feats = enhancer.enhance(feats, lengths)
        for u, ids in zip(utts, recognizer.decode_ids(feats, lengths, search)):
            hyps[u.utt] = recognizer.tokenizer.decode(ids)
    seconds = time.time() - started
    audio_seconds = data.total_frames() * recognizer.feature_config.frame_shift_ms / 1000
    log.info(
        "%s decoding of %d utterances: %.1f s, real-time factor %.4f",
        method,
        len(hyps),
        seconds,
        seconds / max(audio_seconds, 1e-9),
    )
    write_table(args.hyp, hyps)


if __name__ == "__main__":
    main()
