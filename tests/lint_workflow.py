#!/usr/bin/env python3
"""`snakemake --lint` for `make lint`: every lint fails the check but one family, set aside with its reason.

Set aside: "Specify a conda environment or container for each rule" (and its environment-modules
variant). The recipe's software is one Python environment, installed by `make install` from the pinned
requirements.txt into .venv and used by every rule through the interpreter that runs Snakemake; a conda
environment or container per rule would install the same packages again for each rule, and containers do
not run on the machines this recipe is tested on. Every other lint (variables in shell commands,
functions beside rules, paths built with '+', missing logs, long run blocks, ...) is an error.

Snakemake 9's `--lint json` prints text, so the text is parsed: blocks start with "Lints for ...:", items
with "    * <title>:".
"""

import re
import subprocess
import sys
from pathlib import Path

SET_ASIDE = ("Specify a conda environment or container", "Additionally specify a conda environment")


def main() -> int:
    snakemake = Path(sys.executable).with_name("snakemake")
    result = subprocess.run([str(snakemake), "--lint", *sys.argv[1:]], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    where, problems = None, []
    for line in output.splitlines():
        if line.startswith("Lints for "):
            where = line[len("Lints for ") :].rstrip(":")
        elif (match := re.match(r"^    \* (.+?):?$", line)) and not match.group(1).startswith(SET_ASIDE):
            problems.append(f"{where}: {match.group(1)}")
    if "Lints for" not in output and result.returncode != 0:
        print(output, file=sys.stderr)
        return result.returncode
    for problem in problems:
        print(problem)
    print(f"snakemake --lint: {len(problems)} problem(s) (conda/container lints set aside: see {__file__})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
