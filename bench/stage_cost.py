#!/usr/bin/env python3
"""What each stage of the recipe costs per hour of audio: the whole default DAG on a corpus of a chosen size.

    .venv/bin/python bench/stage_cost.py [--utts-per-speaker 225] [--epochs 1] [--cores 2] [--workdir DIR]

Runs `snakemake` (the recipe's own Snakefile and config.yaml, the generic config) in a scratch folder on
synthesized connected digits (local/synth_digits.py: 8 training, 2 dev and 2 test voices; 225 utterances
per voice make about 1.2 hours of training audio), training for --epochs epochs, then reads the jobs'
Snakemake benchmark files as the report does (exp/<tag>/plots/runtime_memory.tsv) and divides each
rule's wall and CPU seconds by the hours of audio it worked on: training by the hours it saw (the
speed-perturbed copies included, per epoch), decoding by the decoded sets', feature extraction by all
the sets' (copies included), everything else by the corpus's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from speechrecipe.fileio import read_table


def hours(data_dir: Path) -> float:
    return sum(float(d) for d in read_table(data_dir / "utt2dur").values()) / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts-per-speaker", type=int, default=225)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default="", help="where the run goes (default: a temporary folder, removed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.workdir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        tag = "stage_cost"
        overrides = [
            f"tag={tag}",
            f"prepare={{utts_per_speaker: {args.utts_per_speaker}}}",
            f"am={{train: {{max_epochs: {args.epochs}, min_steps: 0}}}}",
        ]
        started = time.perf_counter()
        subprocess.run(
            [
                str(ROOT / ".venv/bin/snakemake"),
                "--snakefile",
                str(ROOT / "Snakefile"),
                "--directory",
                str(work),
                "--cores",
                str(args.cores),
                "--config",
                *overrides,
            ],
            check=True,
        )
        wall = time.perf_counter() - started
        data = work / "data" / "synth_digits"
        sets = {name: hours(data / name) for name in ("train", "dev", "test")}
        corpus = sum(sets.values())
        speed_factors = 3  # config.yaml's features.speed_perturb: 0.9, 1.0, 1.1
        per_rule_hours = {
            "make_features": sets["train"] * speed_factors + sets["dev"] + sets["test"],
            "gather_features": sets["train"] * speed_factors + sets["dev"] + sets["test"],
            "train_am": sets["train"] * speed_factors * args.epochs,
            "decode": sets["dev"] + sets["test"],
            "score": sets["dev"] + sets["test"],
        }
        table = pd.read_csv(work / "exp" / tag / "plots" / "runtime_memory.tsv", sep="\t")
        print(
            f"corpus: train {sets['train']:.2f} h, dev {sets['dev']:.2f} h, test {sets['test']:.2f} h; "
            f"{args.epochs} epoch(s); --cores {args.cores}; whole run {wall:.0f} s wall"
        )
        print(
            "| rule | jobs | hours of audio it worked on | wall s | CPU s | wall s per hour | CPU s per hour | peak MB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for row in table.itertuples():
            worked = per_rule_hours.get(row.rule, corpus)
            print(
                f"| {row.rule} | {row.jobs} | {worked:.2f} | {row.total_s:.1f} | {row.cpu_time_s:.1f} | "
                f"{row.total_s / worked:.1f} | {row.cpu_time_s / worked:.1f} | {row.max_rss_mb:.0f} |"
            )


if __name__ == "__main__":
    main()
