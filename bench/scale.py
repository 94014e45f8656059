#!/usr/bin/env python3
"""Training memory and throughput against corpus size: does a process's memory stay flat as the corpus grows?

    .venv/bin/python bench/scale.py [--hours 1 8 100] [--full-epoch-up-to 8] [--workdir /tmp/scale]

For each size, a feature directory as the feature stage writes it (feats.scp over Kaldi archives,
utt2num_frames, text, utt2spk, per-speaker CMVN statistics) with 80-dim features of LibriSpeech-like
lengths (log-normal around 12 s, 1-35 s; 25-minute speakers; about 2.7 words per second of a
1,000-word vocabulary), the values random: what is measured is the data path, not what is learned.
Then ``workflow/scripts/train_am.py`` itself trains on it (2x256 BiLSTM, frame stacking by 3,
20,000 padded frames per batch, 1 thread, the CPU):

- lazy, 1 loader worker (the default): batches read from the archives by a worker process;
- lazy, no worker: the same, in the training process;
- in memory (``--in-memory``): every normalized matrix read once before training.

Sizes up to ``--full-epoch-up-to`` hours train one whole epoch: throughput is the epoch's input
frames over its seconds (history.tsv). Larger sizes are stopped with SIGTERM (as a SLURM time limit
does) after ``--steps`` steps (150: about the 8 h epoch's 144, since the allocator's high-water mark
creeps up with the steps taken, see BENCHMARKS.md): their peak memory covers reading the index and
training. Peak memory
is the high-water mark of the resident set (VmHWM, /proc) of the training process and of each loader
worker, sampled every 0.2 s, and checked with the kernel's own figure for the training process at
its end (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from speechrecipe.archive import matrix_writer
from speechrecipe.cmvn import accumulate_stats

DIM = 80
FRAMES_PER_SECOND = 100
SPEAKER_SECONDS = 25 * 60
MODEL = {"hidden": 256, "layers": 2, "bidirectional": True, "subsampling": "stack", "subsampling_factor": 3}
TRAIN = {
    "max_epochs": 1,
    "batch_frames": 20000,
    "warmup_steps": 100,
    "seed": 1,
    "min_steps": 0,
    "check_every_steps": 0,
    "checkpoint_every_minutes": 0,
    "specaug": {"freq_masks": 2, "time_masks": 2},
}
VARIANTS = {
    "lazy, 1 loader worker": ["--loader-workers", "1"],
    "lazy, no worker": ["--loader-workers", "0"],
    "in memory": ["--loader-workers", "0", "--in-memory"],
}


def make_feature_dir(out: Path, hours: float, seed: int, words: list[str]) -> tuple[int, int]:
    """A synthetic feature directory of ``hours`` of speech; (utterances, frames)."""
    if (out / "cmvn.scp").exists():
        frames = [int(line.split()[1]) for line in (out / "utt2num_frames").read_text().splitlines()]
        return len(frames), sum(frames)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((50_000, DIM), dtype=np.float32)  # matrices are slices of it: fast to make
    target = hours * 3600 * FRAMES_PER_SECOND
    frames_total, lengths, texts, speakers = 0, [], [], []
    stats: dict[str, np.ndarray] = {}
    with matrix_writer(out / "data" / "feats.1.ark", out / "feats.scp") as writer:
        i = 0
        while frames_total < target:
            seconds = float(np.clip(rng.lognormal(np.log(12.0), 0.45), 1.0, 35.0))
            n = int(seconds * FRAMES_PER_SECOND)
            speaker = f"spk{int(frames_total / FRAMES_PER_SECOND // SPEAKER_SECONDS):05d}"
            utt = f"{speaker}-{i:07d}"
            start = int(rng.integers(0, len(pool) - n))
            feats = pool[start : start + n] + np.float32(rng.standard_normal())  # a per-utterance offset
            writer(utt, feats)
            stats[speaker] = stats.get(speaker, 0) + accumulate_stats([feats])
            lengths.append((utt, n))
            texts.append((utt, " ".join(rng.choice(words, size=max(1, int(seconds * 2.7))))))
            speakers.append((utt, speaker))
            frames_total += n
            i += 1
    (out / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in lengths))
    (out / "text").write_text("".join(f"{u} {t}\n" for u, t in texts))
    (out / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in speakers))
    with matrix_writer(out / "cmvn.ark", out / "cmvn.scp") as writer:
        for speaker, value in sorted(stats.items()):
            writer(speaker, value)
    return len(lengths), frames_total


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def train(train_dir: Path, dev_dir: Path, tokenizer: Path, exp: Path, options: list[str], stop_after_steps: int):
    """train_am.py on the set; (peak MB of the training process, of its workers, its own ru_maxrss MB, seconds)."""
    command = [
        sys.executable,
        str(ROOT / "workflow/scripts/train_am.py"),
        str(train_dir),
        str(dev_dir),
        str(tokenizer),
        str(exp),
        "--model",
        json.dumps(MODEL),
        "--train",
        json.dumps(TRAIN),
        "--cmvn",
        "utterance",
        "--threads",
        "1",
        "--use-gpu",
        "false",
        "--max-frames",
        "0",
        "--no-progress",
        "--log-every",
        "10",
        *options,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peaks = {"main": 0.0, "workers": 0.0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peaks["main"] = max(peaks["main"], peak_rss_mb(process.pid))
            for child in children(process.pid):
                peaks["workers"] = max(peaks["workers"], peak_rss_mb(child))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    for line in process.stderr:
        lines.append(line)
        if stop_after_steps and f"step {stop_after_steps}:" in line:
            process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and not stop_after_steps:
        raise SystemExit(f"train_am.py failed:\n{''.join(lines[-30:])}")
    return peaks["main"], peaks["workers"], usage.ru_maxrss / 1024


def epoch_seconds(exp: Path) -> float:
    rows = (exp / "history.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    return float(rows[1].split("\t")[header.index("seconds")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 8, 100])
    parser.add_argument("--full-epoch-up-to", type=float, default=8, help="larger sizes stop after --steps")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--workdir", default="/tmp/speechrecipe_scale", help="where the feature dirs go (kept)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    work = Path(args.workdir)
    # 1,000 words of capitals, as the recipe's normalized transcripts are
    words = ["".join(chr(65 + (i // 26**k) % 26) for k in range(2 + i % 3)) for i in range(1000)]
    dev_utts, _ = make_feature_dir(work / "dev", 0.1, 2, words)
    tokenizer = work / "sp.model"
    if not tokenizer.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "workflow/scripts/train_tokenizer.py"), str(work / "dev/text"), str(tokenizer)]
            + ["--vocab-size", "256"],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
    print(f"machine: {os.cpu_count()} cores; model {MODEL}; {TRAIN['batch_frames']} frames per batch; 1 thread")
    print("| hours | utterances | frames | variant | peak MB, training process | peak MB, loader worker | frames/s |")
    print("|---|---|---|---|---|---|---|")
    for hours in args.hours:
        started = time.perf_counter()
        utts, frames = make_feature_dir(work / f"train_{hours:g}h", hours, 1, words)
        made = time.perf_counter() - started
        full = hours <= args.full_epoch_up_to
        for label in args.variants:
            if not full and label == "in memory" and hours > 16:
                print(f"| {hours:g} | {utts} | {frames} | {label} | not run (about {frames * 340 / 1e9:.0f} GB) | | |")
                continue
            exp = work / "exp" / f"{hours:g}h_{label.replace(' ', '_').replace(',', '')}"
            subprocess.run(["rm", "-rf", str(exp)], check=True)
            main_mb, worker_mb, maxrss = train(
                work / f"train_{hours:g}h", work / "dev", tokenizer, exp, VARIANTS[label], 0 if full else args.steps
            )
            speed = f"{frames / epoch_seconds(exp):,.0f}" if full else f"(stopped after {args.steps} steps)"
            print(
                f"| {hours:g} | {utts} | {frames} | {label} | {main_mb:,.0f} (ru_maxrss {maxrss:,.0f}) | "
                f"{worker_mb:,.0f} | {speed} |",
                flush=True,
            )
        print(f"(made the {hours:g} h feature directory in {made:.0f} s; dev set {dev_utts} utterances)", flush=True)


if __name__ == "__main__":
    main()
