#!/usr/bin/env python3
"""Training throughput of the recipe's training loop against a bare PyTorch loop, same model and batches.

    .venv/bin/python bench/training_overhead.py [--epochs 3] [--takes 30] [--threads 1] [--device cpu|cuda]

Data: FSDD, speakers george, jackson, lucas as training set and nicolas as dev set (takes 0..N-1
of every digit), MFCC and speaker CMVN as in conf/fsdd.yaml; the model and batch settings of
conf/fsdd.yaml (2x128 BiLSTM, frame stacking by 3, 2000 padded frames per batch).

- recipe: speechrecipe.trainer.train() as train_am.py runs it: length-bucketed batches in a
  seeded order, SpecAugment, warm-up schedule, gradient clipping, a dev pass, a checkpoint and a
  history row after every epoch, the averaged final.pt at the end. Run once as configured and once
  without SpecAugment (which is modelling, not overhead).
- bare: the same batches in the same order through collate, forward, CTC loss, backward, clipping
  and an AdamW step; nothing else.

Each variant runs twice, alternately, and the faster run counts (the machine is shared). Throughput
is input frames per second of wall time over the whole call. With --device cuda the recipe trains
with mixed precision (as it does on a GPU) and the GPU's utilization is sampled with nvidia-smi.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch
from common import MODEL, TRAIN, fsdd_sets

from speechrecipe.batching import bucket_batches, epoch_order
from speechrecipe.config import AMTrainConfig, ModelConfig
from speechrecipe.ctc_task import CTCTask
from speechrecipe.dataset import collate
from speechrecipe.model import CTCModel
from speechrecipe.schedule import learning_rate
from speechrecipe.trainer import train


def new_model(dim: int, vocab: int) -> CTCModel:
    torch.manual_seed(1)
    return CTCModel(ModelConfig.from_dict({**MODEL, "input_dim": dim, "vocab_size": vocab}))


def bare_loop(model, data, config: AMTrainConfig, device, amp: bool) -> None:
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    batches = bucket_batches([len(u.feats) for u in data.utterances], config.batch_frames, config.max_batch)
    step = 0
    for epoch in range(1, config.max_epochs + 1):
        for batch in epoch_order(batches, config.seed, epoch):
            utts = [data.utterances[i] for i in batch]
            feats, lengths, targets, target_lengths = collate(utts)
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config.lr, config.warmup_steps)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                log_probs, out_lengths = model(feats.to(device), lengths.to(device))
            loss = torch.nn.functional.ctc_loss(
                log_probs.float().transpose(0, 1),
                targets.to(device),
                out_lengths,
                target_lengths.to(device),
                blank=0,
                reduction="sum",
                zero_infinity=True,
            ) / len(utts)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()


class GpuSampler:
    """Mean GPU utilization (nvidia-smi, every 0.2 s) while it runs."""

    def __init__(self):
        self.samples, self.running = [], True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while self.running:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / max(len(self.samples), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--takes", type=int, default=30, help="FSDD takes per digit and speaker (at most 50)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = device.type == "cuda"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        train_set, dev_set, tokenizer, _ = fsdd_sets(
            ["george", "jackson", "lucas"], ["nicolas"], range(args.takes), scratch
        )
        lengths = [len(u.feats) for u in train_set.utterances]
        frames = sum(lengths) * args.epochs
        print(
            f"data: {len(train_set)} training utterances ({sum(lengths)} frames), {len(dev_set)} dev; "
            f"{args.epochs} epochs; {args.threads} thread(s); device {device}{' (mixed precision)' if amp else ''}"
        )
        for batch_frames in (TRAIN["batch_frames"], 4000, 20000):
            batches = bucket_batches(lengths, batch_frames)
            padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
            print(
                f"length-bucketed batches of {batch_frames} frames: {len(batches)} batches, padding "
                f"{100 * (padded - sum(lengths)) / padded:.1f}% of frames"
            )
        config = AMTrainConfig.from_dict({**TRAIN, "max_epochs": args.epochs})
        no_specaug = config.replace(specaug=config.specaug.replace(freq_masks=0, time_masks=0))

        def recipe(cfg):
            def go():
                train(
                    CTCTask(new_model(train_set.dim, tokenizer.vocab_size), train_set, dev_set, cfg.specaug),
                    tempfile.mkdtemp(dir=scratch),
                    cfg,
                    "bench",
                    device=device,
                    progress=False,
                )

            return go

        variants = {
            "bare PyTorch loop": lambda: bare_loop(
                new_model(train_set.dim, tokenizer.vocab_size), train_set, no_specaug, device, amp
            ),
            "recipe, without SpecAugment": recipe(no_specaug),
            "recipe, as configured (SpecAugment)": recipe(config),
        }
        best = {name: float("inf") for name in variants}
        utilization = {}
        for _ in range(2):
            for name, run in variants.items():
                if device.type == "cuda":
                    with GpuSampler() as sampler:
                        started = time.perf_counter()
                        run()
                        seconds = time.perf_counter() - started
                    utilization[name] = sampler.mean
                else:
                    started = time.perf_counter()
                    run()
                    seconds = time.perf_counter() - started
                best[name] = min(best[name], seconds)
        bare = best["bare PyTorch loop"]
        for name, seconds in best.items():
            extra = f", GPU utilization {utilization[name]:.0f}%" if name in utilization else ""
            print(
                f"{name}: {frames / seconds:,.0f} frames/s ({seconds:.2f} s; {100 * (seconds / bare - 1):+.1f}% "
                f"against the bare loop{extra})"
            )


if __name__ == "__main__":
    main()
