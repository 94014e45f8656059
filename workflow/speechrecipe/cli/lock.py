"""Snakemake's lock left by a Snakemake that was killed: recognised as stale, and only then removed.

Snakemake locks a working directory (``.snakemake/locks/``) while it runs and unlocks it when it
ends; a Snakemake killed with SIGKILL (a closed terminal, an out-of-memory kill, a node that
went down) leaves the lock, and the next run stops with ``LockException`` until
``snakemake --unlock``. Unlocking blindly would let two Snakemakes write the same files, so the
recipe records who holds the lock: the Snakefile's ``onstart`` (which Snakemake runs once it has
locked the directory) writes ``.snakemake/speechrecipe-lock-owner.json`` with the host, the boot,
the process id and its start time. A lock is stale when that record is at least as new as the
lock, names this host and this boot, and its process is gone (or the pid now belongs to another
process), and no other Snakemake process works in the same directory. Anything else (another
host, a lock without a record) is left alone, with the reason.

``python -m speechrecipe.cli.lock [SNAKEMAKE ARGS]`` (what ``make run`` does first) checks the
working directory those arguments name and runs ``snakemake --unlock`` with them when the lock
is stale.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

OWNER = "speechrecipe-lock-owner.json"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_owner(workdir: str | Path = ".") -> None:
    """Write who holds the lock of ``workdir`` (the Snakefile's onstart calls it, after Snakemake has locked)."""
    pid = os.getpid()
    record = {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "started": _start_time(pid)}
    path = Path(workdir) / ".snakemake" / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{OWNER}.{pid}")
    staging.write_text(json.dumps(record))
    os.replace(staging, path)


def other_snakemakes(workdir: str | Path) -> list[int]:
    """Live Snakemake processes of this host working in ``workdir`` (this process excluded)."""
    workdir = os.path.realpath(workdir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.path.realpath(entry / "cwd")
        except OSError:
            continue
        if any(b"snakemake" in a for a in argv[:3]):
            directory = _directory_of([a.decode(errors="replace") for a in argv if a], cwd)
            if directory == workdir:
                found.append(int(entry.name))
    return found


def _directory_of(args: list[str], cwd: str) -> str:
    """The working directory a snakemake command line works in (--directory/-d, relative to ``cwd``)."""
    for i, arg in enumerate(args):
        if arg in ("--directory", "-d") and i + 1 < len(args):
            return os.path.realpath(os.path.join(cwd, args[i + 1]))
        if arg.startswith("--directory="):
            return os.path.realpath(os.path.join(cwd, arg.split("=", 1)[1]))
    return cwd


def lock_state(workdir: str | Path = ".") -> tuple[str, str]:
    """('none' | 'stale' | 'held' | 'unknown', why) for the Snakemake lock of ``workdir``."""
    workdir = Path(workdir)
    locks = [p for p in (workdir / ".snakemake" / "locks").glob("*") if p.is_file()]
    if not locks:
        return "none", "no Snakemake lock"
    others = other_snakemakes(workdir)
    if others:
        return "held", f"Snakemake is running in this directory (pid {', '.join(map(str, others))}): wait for it"
    record_path = workdir / ".snakemake" / OWNER
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return "unknown", "the lock has no record of who holds it"
    if record_path.stat().st_mtime < max(p.stat().st_mtime for p in locks):
        return "unknown", "the lock is newer than the record of who holds it"
    if record.get("host") != socket.gethostname():
        return "held", f"the lock is held by a Snakemake on host {record.get('host')} (pid {record.get('pid')})"
    pid = int(record.get("pid", 0))
    if record.get("boot") == _boot_id() and _start_time(pid) == record.get("started"):
        return "held", f"Snakemake pid {pid} of this host still holds the lock"
    return "stale", f"the Snakemake that held the lock (pid {pid}, this host) is gone"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    workdir = _directory_of(args, os.getcwd())
    state, why = lock_state(workdir)
    if state == "stale":
        print(f"Removing a stale Snakemake lock in {workdir}: {why}.", file=sys.stderr)
        snakemake = Path(sys.executable).with_name("snakemake")
        return subprocess.run([str(snakemake), *args, "--unlock"], capture_output=True, check=False).returncode
    if state in ("held", "unknown"):
        print(
            f"Snakemake's lock in {workdir} is left in place: {why}. If no Snakemake runs there any more, "
            "`snakemake --unlock` (with the same --directory) removes it.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
