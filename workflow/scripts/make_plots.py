#!/usr/bin/env python3
"""Figures and tables of an experiment, written to exp/<tag>/plots/ (what `snakemake --report` shows).

    python workflow/scripts/make_plots.py exp/fsdd_blstm
    python workflow/scripts/make_plots.py exp/fsdd_blstm --dae-history exp/fsdd_blstm/dae/history.tsv \\
        --compare exp/fsdd_other/results.tsv --out-dir /tmp/plots

writes into --out-dir (default EXP_DIR/plots):
  training_curves.png    acoustic-model training and dev loss, dev token error rate (and the DAE's losses)
  wer_vs_snr.png         WER against SNR, one line per (base set, noise), clean at the right (or a note)
  confusion_matrix.png   reference against hypothesis words, per clean set, for digit corpora (or a note)
  runtime_memory.png     wall time and peak memory per rule, from the rules' Snakemake benchmark files
  runtime_memory.tsv     the same per rule (jobs, total_s, mean_s, max_s, cpu_time_s, max_rss_mb); .html too
  results.html           results.tsv as an HTML table

Benchmark files: --benchmark RULE=PATTERN (a rule's benchmark path, wildcards in braces) for each rule, with
--keep WILDCARD=V1,V2 to count only this experiment's values (the sets of results.tsv are always kept);
without --benchmark, every *.benchmark.tsv under EXP_DIR, named by its file name.
"""

import argparse
import logging
from pathlib import Path

import pandas as pd

from speechrecipe import plots
from speechrecipe.cli import setup_logging
from speechrecipe.fileio import atomic_open
from speechrecipe.results import read_results

log = logging.getLogger("make_plots")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", help="the experiment: exp/<tag> (results.tsv, am/history.tsv, decode_<set>/)")
    parser.add_argument("--out-dir", help="where to write (default: EXP_DIR/plots)")
    parser.add_argument("--dae-history", help="the denoising autoencoder's history.tsv, when it was trained")
    parser.add_argument(
        "--benchmark",
        nargs="*",
        default=None,
        metavar="RULE=PATTERN",
        help="a rule's benchmark file pattern, relative to the working directory",
    )
    parser.add_argument(
        "--keep",
        nargs="*",
        default=[],
        metavar="WILDCARD=V1,V2",
        help="count only benchmark files whose wildcard has one of these values",
    )
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="RESULTS_TSV",
        help="other systems' results.tsv, drawn in the same WER-against-SNR figure",
    )
    args = parser.parse_args()
    setup_logging()
    exp = Path(args.exp_dir)
    out = Path(args.out_dir) if args.out_dir else exp / "plots"
    out.mkdir(parents=True, exist_ok=True)

    # Training curves.
    dae = plots.read_history(args.dae_history) if args.dae_history else None
    plots.training_curves(
        plots.read_history(exp / "am" / "history.tsv"), out / "training_curves.png", dae, title=exp.name
    )

    # WER against SNR, and the results table.
    results = read_results(exp / "results.tsv")
    systems = {exp.name: results}
    for path in args.compare:
        name = Path(path).parent.name
        systems[name if name not in systems else str(Path(path).parent)] = read_results(path)
    series = plots.wer_vs_snr(systems, out / "wer_vs_snr.png")
    log.info("WER against SNR: %d line(s)", len(series))
    raw = pd.read_csv(exp / "results.tsv", sep="\t", dtype={"set": str}, keep_default_na=False)
    plots.html_table(
        raw,
        out / "results.html",
        f"Results: {exp.name}",
        f"WER and CER (%) per evaluation set, from {exp}/decode_<set>/{{wer,cer}}.",
    )

    # Word confusions, for digit corpora: every reference word of every scored set is a digit word.
    pairs = {}
    for name in results["set"]:
        per_utt = exp / f"decode_{name}" / "per_utt"
        if per_utt.exists():
            pairs[name] = plots.read_per_utt(per_utt)
        else:
            log.warning("no %s: set %s left out of the confusion matrix", per_utt, name)
    all_pairs = [p for set_pairs in pairs.values() for p in set_pairs]
    if plots.is_digit_corpus(all_pairs):
        clean = [n for n in results.loc[results["noise"] == "clean", "set"] if n in pairs] or list(pairs)
        plots.confusion_matrix({n: plots.confusion_counts(pairs[n]) for n in clean}, out / "confusion_matrix.png")
        log.info("confusion matrix of digit words: sets %s", clean)
    else:
        others = sorted({r for r, _ in all_pairs if r != plots.EPS} - set(plots.DIGIT_WORDS))
        plots.note_figure(
            out / "confusion_matrix.png",
            "Word confusions",
            "Not a digit corpus: the references hold words besides ZERO..NINE\n"
            f"({', '.join(others[:6])}{', ...' if len(others) > 6 else ''}),\n"
            "so no confusion matrix is drawn.",
        )
        log.info("not a digit corpus: no confusion matrix")

    # Runtime and memory per rule.
    if args.benchmark is None:
        files = [(p.name.split(".benchmark")[0], p) for p in sorted(exp.rglob("*.benchmark.tsv"))]
    else:
        patterns = {}
        for item in args.benchmark:
            rule, _, pattern = item.partition("=")
            patterns.setdefault(rule, []).append(pattern)
        keep = {}
        for item in args.keep:
            name, _, values = item.partition("=")
            keep[name] = {v for v in values.split(",") if v}
        if "set" in keep:
            keep["set"] |= set(results["set"])
        files = plots.find_benchmarks(patterns, keep)
    jobs = plots.read_benchmarks(files)
    table = plots.runtime_memory_table(jobs)
    with atomic_open(out / "runtime_memory.tsv") as f:
        table.to_csv(f, sep="\t", index=False)
    plots.html_table(
        table,
        out / "runtime_memory.html",
        f"Runtime and memory per rule: {exp.name}",
        f"From {len(jobs)} Snakemake benchmark file(s): wall time (s) over all jobs of the rule, "
        "mean and longest job, CPU time, and the largest max_rss (MB) of any job.",
    )
    plots.runtime_memory(table, out / "runtime_memory.png")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
