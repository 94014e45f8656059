#!/usr/bin/env bash
# Pipeline overhead: the wall time of the whole recipe on a 60-utterance corpus (bench/tiny60.yaml,
# from nothing: synthesis, validation, features, tokenizer, training, decoding, scoring, report) and
# of `snakemake -n` on the finished run; then where the time went (each job's own benchmark file).
#   bench/pipeline_overhead.sh            (uses .venv; the run goes to a scratch folder, removed after)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.venv/bin"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-pipeline.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp "$here/bench/tiny60.yaml" "$scratch/config.yaml"
run() { "$bin/snakemake" --snakefile "$here/Snakefile" --directory "$scratch" --cores 2 "$@" --configfile "$scratch/config.yaml"; }
now() { date +%s.%N; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(now)
run >"$scratch/run.log" 2>&1 || { tail -50 "$scratch/run.log"; exit 1; }
finished=$(now)
run -n >/dev/null 2>&1  # warm the file cache once
dry_start=$(now)
run -n >"$scratch/dry.log" 2>&1
dry_end=$(now)
grep -q "Nothing to be done" "$scratch/dry.log" || { echo "dry run found work to do:"; cat "$scratch/dry.log"; exit 1; }
"$bin/python" - "$scratch" "$start" "$finished" "$dry_start" "$dry_end" <<'PY'
import collections, pathlib, subprocess, sys, time
scratch = pathlib.Path(sys.argv[1])
start, finished, dry_start, dry_end = map(float, sys.argv[2:])
utts = sum(len((scratch / f"data/synth_digits_tiny60/{s}/text").read_text().splitlines()) for s in ("train", "dev", "test"))
print(f"whole recipe, {utts} utterances, --cores 2: {finished - start:.1f} s wall")
print(f"snakemake -n on the finished run: {dry_end - dry_start:.2f} s")
per_rule = collections.defaultdict(lambda: [0, 0.0])
for tsv in scratch.rglob("*benchmark.tsv"):
    rule = tsv.name.split(".")[0]
    seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
    per_rule[rule][0] += 1
    per_rule[rule][1] += seconds
print("job seconds by rule (jobs that write a benchmark file; 2 run at once):")
for rule, (jobs, seconds) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
    print(f"  {rule:24s} {jobs:2d} job(s) {seconds:6.1f} s")
log = (scratch / "run.log").read_text()
jobs = log.count("\nrule ") + log.count("\nlocalrule ")
started = time.perf_counter()
subprocess.run([sys.executable, "-c", "import torch, torchaudio"], check=True)
print(f"{jobs} jobs in all; starting Python and importing torch+torchaudio once takes {time.perf_counter() - started:.1f} s")
am = (scratch / "exp/bench_tiny60/am/history.tsv").read_text().splitlines()[1:]
print(f"training: {len(am)} epochs, {sum(float(l.split()[5]) for l in am):.1f} s in epochs")
print((scratch / "exp/bench_tiny60/results.tsv").read_text(), end="")
PY
