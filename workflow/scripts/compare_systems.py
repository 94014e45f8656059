#!/usr/bin/env python3
"""Compare experiments' results.tsv side by side: WER (and CER) per clean set and per noise and SNR.

    python workflow/scripts/compare_systems.py exp/fsdd_blstm exp/fsdd_noise_dae exp/fsdd_noise_mc \
        exp/fsdd_noise_dae_mc --base test --relative-to exp/fsdd_blstm

Prints a Markdown table, one row per experiment, one column per condition of --base (clean, then
each noise at each SNR), cells "WER / CER" in %; with --relative-to, a second table gives each
WER's relative change (%) against that experiment (negative: fewer errors).
"""

import argparse
from pathlib import Path

import pandas as pd


def conditions(exp: str, base: str) -> pd.DataFrame:
    table = pd.read_csv(Path(exp) / "results.tsv", sep="\t")
    if "base" not in table:
        table["base"], table["noise"], table["snr"] = table["set"], "clean", float("nan")
    table = table[table["base"] == base].copy()
    table["condition"] = [n if n == "clean" else f"{n} {s:g} dB" for n, s in zip(table["noise"], table["snr"])]
    return table.set_index("condition")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dirs", nargs="+")
    parser.add_argument("--base", default="test", help="the clean set whose conditions are compared")
    parser.add_argument("--relative-to", help="an experiment of exp_dirs: relative WER change against it")
    args = parser.parse_args()
    tables = {exp: conditions(exp, args.base) for exp in args.exp_dirs}
    columns = list(dict.fromkeys(c for t in tables.values() for c in t.index))
    columns.sort(key=lambda c: (c != "clean", c.split(" ")[0], float(c.split(" ")[1]) if c != "clean" else 0))
    rows = [[exp] + [f"{t.loc[c, 'wer']:g} / {t.loc[c, 'cer']:g}" if c in t.index else "" for c in columns]
            for exp, t in tables.items()]
    print(markdown(["system (WER / CER %)", *columns], rows))
    if args.relative_to:
        reference = tables[args.relative_to]
        rows = [[exp] + [f"{100 * (t.loc[c, 'wer'] / reference.loc[c, 'wer'] - 1):+.1f}" if c in t.index else ""
                         for c in columns] for exp, t in tables.items()]
        print()
        print(markdown([f"WER change vs {args.relative_to} (%)", *columns], rows))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


if __name__ == "__main__":
    main()
