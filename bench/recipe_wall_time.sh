#!/usr/bin/env bash
# Wall time of the recipe from a clean clone, and of `snakemake -n` on the finished run.
#   bench/recipe_wall_time.sh [CONFIGFILE]      (default: the default recipe through `make run`)
# Clones HEAD into a scratch directory beside the checkout (so ../shared is found the same way),
# reuses nothing from this checkout but the pip download cache, and prints one line per figure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "$(dirname "$here")/bench-clone.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
git clone -q "$here" "$scratch/main"
cd "$scratch/main"
start=$(date +%s.%N)
make install >/dev/null
installed=$(date +%s.%N)
if [ $# -ge 1 ]; then
  .venv/bin/snakemake --cores 2 --configfile "$1" >"$scratch/run.log" 2>&1
else
  make run >"$scratch/run.log" 2>&1
fi
finished=$(date +%s.%N)
.venv/bin/snakemake -n --cores 2 ${1:+--configfile "$1"} >/dev/null 2>&1  # warm the file cache once
dry_start=$(date +%s.%N)
.venv/bin/snakemake -n --cores 2 ${1:+--configfile "$1"} >"$scratch/dry.log" 2>&1
dry_end=$(date +%s.%N)
grep -q "Nothing to be done" "$scratch/dry.log" || { echo "dry run found work to do:"; cat "$scratch/dry.log"; exit 1; }
tag=$(.venv/bin/python - "$@" <<'PY'
import sys, yaml
config = yaml.safe_load(open("config.yaml"))
for f in sys.argv[1:]:
    config.update(yaml.safe_load(open(f)))
print(config["tag"])
PY
)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p')"
seconds() { python3 -c "print(f'{$2 - $1:.2f}')"; }
echo "install (pip, into .venv): $(seconds "$start" "$installed") s"
echo "recipe (${1:-make run}): $(seconds "$installed" "$finished") s"
echo "snakemake -n on the finished run: $(seconds "$dry_start" "$dry_end") s"
cat "exp/$tag/results.tsv"
