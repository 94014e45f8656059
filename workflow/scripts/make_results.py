#!/usr/bin/env python3
"""Collect the scores of an experiment into results.tsv and RESULTS.md.

    python workflow/scripts/make_results.py exp/fsdd --sets dev test --config exp/fsdd/config.yaml

results.tsv has one row per set (set, wer, cer, words, ins, del, sub, base, noise, snr): base,
noise and snr say which clean set a noisy test set was mixed from, with which noise, at which
SNR (--conditions, from the recipe; clean sets have noise 'clean' and no snr). RESULTS.md adds
a WER-by-SNR table when there are noisy sets, the training summary and the command that
reproduces the table.
"""

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from speechrecipe.cli import setup_logging
from speechrecipe.fileio import atomic_open
from speechrecipe.results import results_markdown, results_table

log = logging.getLogger("make_results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir")
    parser.add_argument("--sets", nargs="+", required=True)
    parser.add_argument("--config", help="the experiment's effective config (shown in RESULTS.md)")
    parser.add_argument(
        "--conditions", type=json.loads, default={}, help='JSON: {noisy set: {"base": set, "noise": name, "snr": dB}}'
    )
    args = parser.parse_args()
    setup_logging()
    exp = Path(args.exp_dir)
    table = results_table(exp, args.sets, args.conditions)
    with atomic_open(exp / "results.tsv") as f:
        table.to_csv(f, sep="\t", index=False)
    history = pd.read_csv(exp / "am" / "history.tsv", sep="\t")
    with atomic_open(exp / "RESULTS.md") as f:
        f.write(results_markdown(exp, table, history, args.config))
    log.info("wrote %s and %s", exp / "results.tsv", exp / "RESULTS.md")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
