#!/usr/bin/env python3
"""Compare experiments' results.tsv side by side: WER (and CER) per clean set and per noise and SNR.

    python workflow/scripts/compare_systems.py exp/fsdd_blstm exp/fsdd_noise_dae exp/fsdd_noise_mc \
        exp/fsdd_noise_dae_mc --base test --relative-to exp/fsdd_blstm

Prints a Markdown table, one row per experiment, one column per condition of --base (clean, then
each noise at each SNR), cells "WER / CER" in %; with --relative-to, a second table gives each
WER's relative change (%) against that experiment (negative: fewer errors).
"""

import argparse

from speechrecipe.results import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dirs", nargs="+")
    parser.add_argument("--base", default="test", help="the clean set whose conditions are compared")
    parser.add_argument("--relative-to", help="an experiment of exp_dirs: relative WER change against it")
    args = parser.parse_args()
    print(compare(args.exp_dirs, args.base, args.relative_to))


if __name__ == "__main__":
    main()
