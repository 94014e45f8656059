"""What the Snakefile's onstart, onsuccess and onerror hooks do: record who holds the lock, and say
only what is true at the end of a run (which job failed and where its log is; where results are,
only when this run has them up to date)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .lock import record_owner

RESUME = "Fix the cause and run the same command again: finished steps are kept and training resumes from its last "
RESUME += "checkpoint."


def on_start() -> None:
    record_owner(".")


def success_message(results: list[str], inputs: list[str]) -> str:
    """'Done.', and where the results are when they exist and are newer than everything they are made from."""
    if results and all(os.path.exists(p) for p in results):
        made = min(os.path.getmtime(p) for p in results)
        if all(not os.path.exists(p) or os.path.getmtime(p) <= made for p in inputs):
            return f"\nDone. Results: {' and '.join(results)}"
    return "\nDone. (The steps asked for ran; the results table is not up to date: run without --until/targets to make it.)"


def _log_files(log) -> list[str]:
    """Snakemake hands the hooks its log as a path or a list of paths."""
    return [str(p) for p in log] if isinstance(log, list | tuple) else [str(log)]


def failed_jobs(log) -> list[tuple[str, str]]:
    """(rule, log files) of every job Snakemake's log reports as failed."""
    try:
        text = "\n".join(Path(p).read_text(errors="replace") for p in _log_files(log))
    except OSError:
        return []
    jobs = []
    for block in re.split(r"\n(?=Error in rule )", text)[1:]:
        rule = re.match(r"Error in rule (\S+?):", block).group(1)
        logs = re.search(r"^\s+log: (.*?)(?: \(check log file\(s\) for error details\))?$", block, flags=re.MULTILINE)
        jobs.append((rule, logs.group(1) if logs else "none"))
    return jobs


def error_message(log) -> str:
    jobs = failed_jobs(log)
    if jobs:
        listed = "\n".join(f"  {rule}: its log is {logs}" for rule, logs in dict.fromkeys(jobs))
        return f"\n{len(jobs)} job(s) failed (their logs are printed above):\n{listed}\n{RESUME}"
    return (
        f"\nSnakemake stopped with an error, and no job failed: its message is above (the whole log: {log}). {RESUME}"
    )
