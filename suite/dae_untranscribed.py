#!/usr/bin/env python3
"""Issue 15: the DAE systems on FSDD, each a snakemake run of the recipe, and their WER table.

    .venv/bin/python suite/dae_untranscribed.py --split one_speaker [--systems none dae extra] [--mc 0 1] [--seeds 1]
    .venv/bin/python suite/dae_untranscribed.py --split one_speaker --table-only

A system is conf/fsdd.yaml + conf/noise/fsdd.yaml + conf/untranscribed/fsdd_<split>.yaml, plus:
  none:  nothing (the acoustic model starts from random weights);
  dae:   conf/untranscribed/dae.yaml (am.init: dae; the DAE learns from the transcribed training audio);
  extra: dae.yaml + conf/untranscribed/extra_<split>.yaml (the DAE also learns from untranscribed audio);
  enhance: the DAE of extra (conf/untranscribed/enhance.yaml) cleans the features at decoding instead;
  layerwise: extra with a 2-layer DAE pretrained one layer at a time (conf/untranscribed/layerwise.yaml);
each without and with multi-condition training (conf/untranscribed/mc.yaml). Tags: dae15_<split>_<system>[_mc]_s<seed>.
The table (suite/results_dae_<split>.tsv, and markdown on stdout) gives every system's WER on each set of
results.tsv: dev and test, clean and noisy (sc: Speech Commands, the training noise; babble: held out).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from speechrecipe.results import markdown

SYSTEMS = {
    "none": [],
    "dae": ["conf/untranscribed/dae.yaml"],
    "extra": ["conf/untranscribed/dae.yaml", "conf/untranscribed/extra_{split}.yaml"],
    "enhance": ["conf/untranscribed/enhance.yaml", "conf/untranscribed/extra_{split}.yaml"],
    "layerwise": [
        "conf/untranscribed/dae.yaml",
        "conf/untranscribed/extra_{split}.yaml",
        "conf/untranscribed/layerwise.yaml",
    ],
}


def tag(split: str, system: str, mc: bool, seed: int) -> str:
    return f"dae15_{split}_{system}{'_mc' if mc else ''}_s{seed}"


def run(split: str, system: str, mc: bool, seed: int, cores: int) -> None:
    configs = ["conf/fsdd.yaml", "conf/noise/fsdd.yaml", f"conf/untranscribed/fsdd_{split}.yaml"]
    configs += [c.format(split=split) for c in SYSTEMS[system]] + (["conf/untranscribed/mc.yaml"] if mc else [])
    command = [str(ROOT / ".venv/bin/snakemake"), "--cores", str(cores), "--configfile", *configs]
    command += ["--config", f"tag={tag(split, system, mc, seed)}", f"seed={seed}"]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def table(split: str) -> pd.DataFrame:
    rows = []
    for results in sorted((ROOT / "exp").glob(f"dae15_{split}_*/results.tsv")):
        frame = pd.read_csv(results, sep="\t")
        name = results.parent.name
        for row in frame.itertuples():
            condition = "clean" if str(row.noise) in ("clean", "nan", "") else f"{row.noise} {row.snr:g} dB"
            rows.append({"system": name, "set": f"{row.base} {condition}", "wer": row.wer})
    if not rows:
        raise SystemExit(f"no exp/dae15_{split}_*/results.tsv yet")
    wide = pd.DataFrame(rows).pivot_table(index="system", columns="set", values="wer", aggfunc="first")
    return wide.reindex(sorted(wide.columns, key=lambda c: (c.split()[0], c != f"{c.split()[0]} clean", c)), axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", required=True, choices=["one_speaker", "full"])
    parser.add_argument("--systems", nargs="+", default=["none", "dae", "extra"], choices=list(SYSTEMS))
    parser.add_argument("--mc", nargs="+", type=int, default=[0, 1], choices=[0, 1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        for seed in args.seeds:
            for mc in args.mc:
                for system in args.systems:
                    run(args.split, system, bool(mc), seed, args.cores)
    wide = table(args.split)
    wide.to_csv(ROOT / "suite" / f"results_dae_{args.split}.tsv", sep="\t")
    rows = [[name, *(f"{v:.1f}" if pd.notna(v) else "" for v in values)] for name, values in wide.iterrows()]
    print(markdown(["system", *wide.columns], rows))


if __name__ == "__main__":
    sys.exit(main())
