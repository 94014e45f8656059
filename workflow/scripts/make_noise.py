#!/usr/bin/env python3
"""Generate noise recordings for a corpus without noise of its own: white, pink and babble.

    python workflow/scripts/make_noise.py data/fsdd/noise_generated --types white pink babble \
        --speech-dir data/fsdd/train --rate 8000 --seconds 60 --seed 1

Writes OUT_DIR/<type>.wav (16-bit, --rate). Babble is made of utterances of --speech-dir
(the training set: test speakers are never in it), several talkers at once.
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from speechrecipe.audio import write_wav
from speechrecipe.cli import setup_logging
from speechrecipe.datadir import DataDir
from speechrecipe.noise import GENERATED_TYPES, generate

log = logging.getLogger("make_noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--types", nargs="+", choices=GENERATED_TYPES, default=list(GENERATED_TYPES))
    parser.add_argument("--speech-dir", help="data directory whose utterances make the babble")
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--babble-utterances", type=int, default=200, help="utterances drawn for the babble")
    args = parser.parse_args()
    setup_logging()
    speech = None
    if "babble" in args.types:
        if not args.speech_dir:
            parser.error("babble needs --speech-dir")
        data = DataDir.load(args.speech_dir)
        utts = data.utterances
        rng = np.random.default_rng(args.seed)
        chosen = sorted(rng.choice(len(utts), size=min(args.babble_utterances, len(utts)), replace=False))
        speech = [data.audio(utts[i], args.rate)[0] for i in chosen]
        log.info("babble from %d utterances of %s", len(speech), args.speech_dir)
    for kind in args.types:
        # each type's own seed, so that asking for fewer types leaves the others' files unchanged
        noise = generate(kind, args.seconds, args.rate, args.seed * 1000 + GENERATED_TYPES.index(kind), speech)
        write_wav(Path(args.out_dir) / f"{kind}.wav", noise, args.rate)
        log.info("%s/%s.wav: %.0f s", args.out_dir, kind, args.seconds)


if __name__ == "__main__":
    main()
