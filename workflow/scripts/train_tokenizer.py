#!/usr/bin/env python3
"""Train the SentencePiece output units on a Kaldi ``text`` file.

    python workflow/scripts/train_tokenizer.py data/fsdd/train/text exp/fsdd/tokens/sp.model --type unigram --vocab-size 64

Writes the model and tokens.txt (``piece id`` per line; id 0 is the CTC blank).
"""

import argparse

from speechrecipe import tokens
from speechrecipe.cli import setup_logging
from speechrecipe.fileio import read_table
from speechrecipe.text import normalize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text")
    parser.add_argument("model")
    parser.add_argument("--type", default="unigram", choices=["unigram", "bpe", "char"])
    parser.add_argument("--vocab-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    texts = [normalize(t) for t in read_table(args.text).values()]
    tokenizer = tokens.train(texts, args.model, args.type, args.vocab_size, args.seed)
    print(f"{tokenizer.vocab_size} units: {' '.join(tokenizer.pieces)}")


if __name__ == "__main__":
    main()
