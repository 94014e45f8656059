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
from speechrecipe.scoring import parse_kaldi_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir")
    parser.add_argument("--sets", nargs="+", required=True)
    parser.add_argument("--config", help="the experiment's effective config (shown in RESULTS.md)")
    parser.add_argument("--conditions", type=json.loads, default={},
                        help='JSON: {noisy set: {"base": set, "noise": name, "snr": dB}}')
    args = parser.parse_args()
    setup_logging()
    exp = Path(args.exp_dir)
    rows = []
    for name in args.sets:
        wer = parse_kaldi_line((exp / f"decode_{name}" / "wer").read_text())
        cer = parse_kaldi_line((exp / f"decode_{name}" / "cer").read_text())
        condition = args.conditions.get(name, {"base": name, "noise": "clean", "snr": None})
        rows.append({"set": name, "wer": round(wer.rate, 2), "cer": round(cer.rate, 2), "words": wer.total,
                     "ins": wer.ins, "del": wer.dels, "sub": wer.subs, **condition})
    table = pd.DataFrame(rows, columns=["set", "wer", "cer", "words", "ins", "del", "sub", "base", "noise", "snr"])
    with atomic_open(exp / "results.tsv") as f:
        table.to_csv(f, sep="\t", index=False)

    history = pd.read_csv(exp / "am" / "history.tsv", sep="\t")
    lines = [f"# Results: {exp.name}", "", "WER and CER (%) per evaluation set, from exp/"
             f"{exp.name}/decode_<set>/{{wer,cer}}:", "", _markdown(table), "", *_by_snr(table),
             f"Acoustic model: {len(history)} epochs, {history['seconds'].sum():.0f} s of training, "
             f"best dev loss {history['dev_loss'].min():.4f} (epoch {int(history.loc[history['dev_loss'].idxmin(), 'epoch'])}), "
             f"last dev token error rate {100 * history['dev_ter'].iloc[-1]:.2f} %.", ""]
    for name in args.sets:
        lines.append(f"    {(exp / f'decode_{name}' / 'wer').read_text().splitlines()[0]} {exp}/decode_{name}")
    lines.append("")
    if args.config:
        lines += ["Reproduce with:", "", f"    snakemake --cores 2 --configfile {args.config}", "",
                  "Config:", "", "```yaml", Path(args.config).read_text().rstrip(), "```", ""]
    with atomic_open(exp / "RESULTS.md") as f:
        f.write("\n".join(lines))
    print(table.to_string(index=False))


def _by_snr(table: pd.DataFrame) -> list[str]:
    """WER by SNR: a row per (clean set, noise), the clean WER beside it; nothing without noisy sets."""
    noisy = table[table["noise"] != "clean"]
    if noisy.empty:
        return []
    clean = table[table["noise"] == "clean"].set_index("base")["wer"]
    pivot = noisy.pivot_table(index=["base", "noise"], columns="snr", values="wer").sort_index(axis=1)
    pivot.columns = [f"{c:g} dB" for c in pivot.columns]
    pivot = pivot.reset_index()
    pivot.insert(2, "clean", [clean.get(b, float("nan")) for b in pivot["base"]])
    return ["WER (%) by SNR of the noisy test sets:", "", _markdown(pivot), ""]


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join("" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


if __name__ == "__main__":
    main()
