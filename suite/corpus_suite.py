#!/usr/bin/env python3
"""The corpus suite: the generic config (config.yaml + conf/kaldi.yaml, nothing but paths) on corpora
of different shapes, each given to the recipe as Kaldi data directories, as a user's own corpus is.

    python suite/corpus_suite.py prepare                      # the corpora's Kaldi dirs, under data/suite/
    python suite/corpus_suite.py run [--corpora yesno digits] [--seeds 1 2 3] [--name generic] \\
        [--configfile candidate.yaml] [--cores 2]              # exp/suite_<name>_<corpus>_s<seed>/
    python suite/corpus_suite.py table [--name generic]       # suite/results_<name>.tsv and a Markdown table

Two roles, fixed before any run: the *development* corpora choose the generic config's rules (by
their dev sets only), the *held-out* corpora never choose anything and are run once the rules are
fixed, to report how the rules generalize. The synthetic corpora come from local/synth_digits.py's
engine (eSpeak NG voices) with other word lists; FSDD and LJ Speech from ../shared/data.

A run is ``snakemake --configfile conf/kaldi.yaml [--configfile CANDIDATE] --config kaldi_dirs=...
seed=S tag=... data_dir=...``: exactly what a user with that corpus would type, plus the seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SUITE_DATA = "data/suite"  # the corpora as the user's Kaldi dirs (relative to ROOT, like a user's paths)


@dataclass(frozen=True)
class Corpus:
    name: str
    role: str  # "development" (chooses rules on its dev set) or "held-out" (reports only)
    what: str  # one line for the table
    prepare: list[list[str]]  # commands (args after the interpreter) that write its Kaldi dirs
    sets: dict[str, str]  # set name -> Kaldi dir (relative to ROOT)
    eval_sets: list[str] = field(default_factory=lambda: ["dev", "test"])
    # What really differs between corpora and a user would set for theirs (features of 8 kHz audio), never a
    # schedule or model knob: those are the generic config's.
    config: dict = field(default_factory=dict)


def synth(out: str, seed: int, words: str | None, lengths: tuple[int, int], speakers: tuple[int, int, int], utts: int):
    command = ["local/synth_digits.py", "--out-dir", out, "--seed", str(seed), "--utts-per-speaker", str(utts)]
    command += ["--min-digits", str(lengths[0]), "--max-digits", str(lengths[1])]
    command += ["--num-train-speakers", str(speakers[0]), "--num-dev-speakers", str(speakers[1])]
    command += ["--num-test-speakers", str(speakers[2])]
    return command + (["--words", words] if words else [])


def sets_of(out: str, names=("train", "dev", "test")) -> dict[str, str]:
    return {name: f"{out}/{name}" for name in names}


def corpora() -> dict[str, Corpus]:
    d = SUITE_DATA
    commands = "up,down,left,right,on,off,stop,go,yes,no,forward,backward"
    nato = (
        "alpha,bravo,charlie,delta,echo,foxtrot,golf,hotel,india,juliet,kilo,lima,mike,november,oscar,papa,"
        "quebec,romeo,sierra,tango,uniform,victor,whiskey,xray,yankee,zulu"
    )
    listed = [
        # --- development: these choose the rules (dev sets only) ---
        Corpus(
            "yesno",
            "development",
            "2 words, 8 per utterance, 26 training utterances of 2 voices",
            [synth(f"{d}/yesno", 21, "yes,no", (8, 8), (2, 1, 2), 13)],
            sets_of(f"{d}/yesno"),
        ),
        Corpus(
            "digits",
            "development",
            "connected digits (1-5), 8 training voices x 60: the default corpus",
            [synth(f"{d}/digits", 1, None, (1, 5), (8, 2, 2), 60)],
            sets_of(f"{d}/digits"),
        ),
        Corpus(
            "fsdd",
            "development",
            "FSDD: real isolated digits of 3 training speakers; an unseen speaker's isolated and connected digits",
            [["local/fsdd.py", "--out-dir", f"{d}/fsdd", "--corpus-dir", "../shared/data/fsdd"]],
            sets_of(f"{d}/fsdd", ("train", "dev", "dev_connected", "test", "test_connected")),
            ["dev", "dev_connected", "test", "test_connected"],
            # 8 kHz audio: conf/fsdd.yaml's features (at 16 kHz the mel bins above 4 kHz would be empty)
            {"features": {"type": "mfcc", "num_ceps": 13, "num_mel_bins": 23, "sample_rate": 8000}},
        ),
        Corpus(
            "ljspeech",
            "development",
            "LJ Speech: read sentences, one voice, 36 minutes (25 dev and 25 test clips held out)",
            [["local/ljspeech.py", "--out-dir", f"{d}/ljspeech", "--corpus-dir", "../shared/data/ljspeech"]],
            sets_of(f"{d}/ljspeech"),
        ),
        # --- held-out: run only with the chosen rules; they choose nothing ---
        Corpus(
            "isolated_digits",
            "held-out",
            "isolated digits of 5 training voices x 40; unseen voices' isolated and connected (2-5) digits",
            [
                synth(f"{d}/isolated_digits", 31, None, (1, 1), (5, 2, 2), 40),
                synth(f"{d}/isolated_digits_connected", 31, None, (2, 5), (5, 2, 2), 20),
            ],
            {
                **sets_of(f"{d}/isolated_digits"),
                "test_connected": f"{d}/isolated_digits_connected/test",
            },
            ["dev", "test", "test_connected"],
        ),
        Corpus(
            "commands",
            "held-out",
            "12 command words, isolated, 8 training voices x 30",
            [synth(f"{d}/commands", 41, commands, (1, 1), (8, 2, 2), 30)],
            sets_of(f"{d}/commands"),
        ),
        Corpus(
            "nato",
            "held-out",
            "26 spelling-alphabet words, 1-4 per utterance, 6 training voices x 40",
            [synth(f"{d}/nato", 51, nato, (1, 4), (6, 2, 2), 40)],
            sets_of(f"{d}/nato"),
        ),
        Corpus(
            "few_dozen",
            "held-out",
            "connected digits (3-6), 40 training utterances of 2 voices",
            [synth(f"{d}/few_dozen", 61, None, (3, 6), (2, 1, 2), 20)],
            sets_of(f"{d}/few_dozen"),
        ),
    ]
    return {c.name: c for c in listed}


def prepare(corpus: Corpus) -> None:
    for command in corpus.prepare:
        out = Path(ROOT, command[command.index("--out-dir") + 1])
        if (out / "train" / "text").is_file():
            continue  # prepared already (the preparation scripts are deterministic)
        subprocess.run([PYTHON, *command], cwd=ROOT, check=True)


def tag_of(name: str, corpus: str, seed: int) -> str:
    return f"suite_{name}_{corpus}_s{seed}"


def run(corpus: Corpus, seed: int, name: str, configfiles: list[str], cores: int) -> Path:
    prepare(corpus)
    tag = tag_of(name, corpus.name, seed)
    config = {
        "kaldi_dirs": corpus.sets,
        "eval_sets": corpus.eval_sets,
        "seed": seed,
        "tag": tag,
        # The imported copy is the same for every seed and candidate: prepared and featurized once.
        "data_dir": f"data/suite_import/{corpus.name}",
        **corpus.config,
    }
    command = [str(Path(PYTHON).with_name("snakemake")), "--cores", str(cores)]
    command += ["--configfile", "conf/kaldi.yaml", *configfiles]  # later files override earlier ones
    command += ["--config", *(f"{k}={json.dumps(v)}" for k, v in config.items())]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return ROOT / "exp" / tag


def hours_of(corpus: Corpus) -> float:
    utt2dur = Path(ROOT, corpus.sets["train"], "utt2dur")
    return sum(float(line.split()[1]) for line in utt2dur.read_text().splitlines()) / 3600


def collect(name: str, chosen: dict[str, Corpus], seeds: list[int]) -> pd.DataFrame:
    rows = []
    for corpus in chosen.values():
        for seed in seeds:
            results = ROOT / "exp" / tag_of(name, corpus.name, seed) / "results.tsv"
            if not results.is_file():
                continue
            table = pd.read_csv(results, sep="\t")
            history = pd.read_csv(results.with_name("am") / "history.tsv", sep="\t")
            for row in table.itertuples():
                rows.append(
                    {
                        "corpus": corpus.name,
                        "role": corpus.role,
                        "train_hours": round(hours_of(corpus), 3),
                        "set": row.set,
                        "seed": seed,
                        "wer": row.wer,
                        "cer": row.cer,
                        "steps": int(history["step"].iloc[-1]),
                        "epochs": int(history["epoch"].iloc[-1]),
                    }
                )
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (min-max) of WER and CER over the seeds, per corpus and set."""
    keys = ["corpus", "role", "train_hours", "set"]
    grouped = results.groupby(keys, sort=False)
    out = grouped.agg(
        seeds=("seed", "count"),
        wer=("wer", "mean"),
        wer_min=("wer", "min"),
        wer_max=("wer", "max"),
        cer=("cer", "mean"),
        steps=("steps", "mean"),
    ).reset_index()
    return out.round({"wer": 2, "cer": 2, "steps": 0})


def markdown(table: pd.DataFrame) -> str:
    lines = ["| corpus | role | training hours | set | seeds | WER (min-max) | CER | steps |", "|---" * 8 + "|"]
    for r in table.itertuples():
        spread = f" ({r.wer_min:g}-{r.wer_max:g})" if r.seeds > 1 else ""
        lines.append(
            f"| {r.corpus} | {r.role} | {r.train_hours:g} | {r.set} | {r.seeds} | {r.wer:g}{spread} | {r.cer:g} "
            f"| {r.steps:g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["prepare", "run", "table"])
    parser.add_argument("--corpora", nargs="+", help="default: all (prepare, table) or the development ones (run)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--name", default="generic", help="names the runs: exp/suite_<name>_<corpus>_s<seed>/")
    parser.add_argument("--configfile", nargs="*", default=[], help="candidate settings over the generic config (run)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    known = corpora()
    unknown = set(args.corpora or []) - set(known)
    if unknown:
        parser.error(f"unknown corpora {sorted(unknown)}: use {', '.join(known)}")
    if args.action == "run" and not args.corpora:
        chosen = {n: c for n, c in known.items() if c.role == "development"}
    else:
        chosen = {n: known[n] for n in (args.corpora or known)}
    if args.action == "prepare":
        for corpus in chosen.values():
            prepare(corpus)
    elif args.action == "run":
        configfiles = [str(Path(path).resolve()) for path in args.configfile]
        for corpus in chosen.values():
            for seed in args.seeds:
                run(corpus, seed, args.name, configfiles, args.cores)
    # The table covers every corpus and seed run under this name so far, not only this call's.
    results = collect(args.name, known, sorted({*args.seeds, 1, 2, 3}))
    if results.empty:
        return 0
    out = ROOT / "suite" / f"results_{args.name}.tsv"
    results.to_csv(out, sep="\t", index=False)
    print(markdown(summary(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
