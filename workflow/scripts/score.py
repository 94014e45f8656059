#!/usr/bin/env python3
"""Score hypotheses against a Kaldi ``text`` file: wer, cer and per_utt files, Kaldi's format.

python workflow/scripts/score.py data/fsdd/test/text exp/fsdd/decode_test/hyp.txt exp/fsdd/decode_test
"""

import argparse
from pathlib import Path

from speechrecipe.cli import setup_logging
from speechrecipe.fileio import atomic_open, read_table
from speechrecipe.scoring import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref")
    parser.add_argument("hyp")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    setup_logging()
    result = score(read_table(args.ref), read_table(args.hyp))
    out = Path(args.out_dir)
    with atomic_open(out / "per_utt") as f:
        f.write("\n".join(result.per_utt) + "\n")
    with atomic_open(out / "cer") as f:
        f.write(result.cer.kaldi_line("CER") + "\n")
    with atomic_open(out / "wer") as f:
        f.write(result.wer.kaldi_line("WER") + "\n")
        if result.missing:
            f.write(f"# {len(result.missing)} utterance(s) had no hypothesis and count as deletions\n")
    print(result.wer.kaldi_line("WER"), args.hyp)
    print(result.cer.kaldi_line("CER"), args.hyp)


if __name__ == "__main__":
    main()
