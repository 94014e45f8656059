#!/usr/bin/env python3
"""Train a word n-gram language model (interpolated modified Kneser-Ney, ARPA) on a Kaldi ``text`` file.

    python workflow/scripts/train_lm.py data/fsdd/train/text exp/fsdd/lm/lm.arpa --order 3

Transcripts are normalized as for scoring (speechrecipe.text.normalize) before counting.
"""

import argparse

from speechrecipe.cli import setup_logging
from speechrecipe.fileio import read_table
from speechrecipe.lm import train_arpa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", help="Kaldi text file: utt-id transcript")
    parser.add_argument("arpa", help="the ARPA file to write")
    parser.add_argument("--order", type=int, default=3)
    args = parser.parse_args()
    setup_logging()
    train_arpa(read_table(args.text).values(), args.arpa, args.order)


if __name__ == "__main__":
    main()
