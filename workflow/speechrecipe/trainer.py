"""The one training loop: epochs of bucketed batches, checkpoints, resume, early stopping, averaging.

What is trained is a *task* (:class:`Task`): the CTC acoustic model
(:mod:`speechrecipe.ctc_task`) or the denoising autoencoder (:mod:`speechrecipe.dae_task`).
A task says how long its utterances are, how a batch is built, what its loss is and what
is measured on the dev set; everything else is here, the same for every task.

Guarantees a user can rely on:

- a checkpoint ``epoch-N.pt`` is written atomically after every epoch, and a
  re-run after an interruption (SIGKILL included) continues from the newest
  one made for the same run (:func:`speechrecipe.config.run_hash`);
- the random state is derived from (seed, epoch), so a resumed run on the CPU
  gives the same weights as an uninterrupted one;
- ``history.tsv`` gains one row per epoch (loss, dev loss, the task's dev
  metrics, learning rate, seconds, skipped batches);
- a batch with a non-finite loss is skipped and counted; more than
  ``max_bad_batches`` in an epoch stop training with the utterances named;
- training stops early when the dev loss (or, with ``select_by: ter``, the
  dev token error rate) has not improved for ``patience`` epochs, and
  ``final.pt`` is the average of the best ``average_best`` checkpoints by the
  same criterion.

Data-parallel training (``torch.distributed`` joined by the caller under torchrun;
:mod:`speechrecipe.distributed`) wraps the model in ``DistributedDataParallel`` and
keeps the single-process semantics:

- every rank builds the same length-bucketed batches in the same (seed, epoch)
  order; each step, rank ``r`` of ``W`` takes utterances ``r, r+W, r+2W, ...`` of
  the *same* global batch (:func:`~speechrecipe.batching.shard_batch`), so an epoch
  covers every utterance exactly once, none dropped or repeated. A rank left
  without an utterance (a batch smaller than ``W``) runs one with weight 0;
- augmentation is drawn for the whole global batch on every rank before it is
  split, so each utterance gets the masks it gets in a single process;
- each rank's loss is its part's summed loss times ``W / N`` (``N`` the global
  batch's normalizer: utterances for CTC): DDP averages gradients over the
  ``W`` ranks, so the gradient is that of the single-process loss (summed / ``N``)
  of the same batch, up to floating-point summation order; clipping, the
  learning rate and the step count are therefore the same too;
- the dev set is split by whole batches and its sums are all-reduced; a batch
  with a non-finite loss on any rank is skipped on all of them;
- only rank 0 writes ``epoch-N.pt``, ``history.tsv`` and ``final.pt`` and logs;
  on resume rank 0 picks the checkpoint and every rank loads that same file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from . import checkpoint, distributed
from .batching import bucket_batches, epoch_order
from .config import TrainConfig
from .fileio import atomic_open
from .model.files import save_final
from .schedule import best_epochs, learning_rate, should_stop

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """More batches than ``max_bad_batches`` gave a NaN or infinite loss in one epoch."""


@dataclass
class Batch:
    """What a task gives the loop for one step: its inputs (this rank's part) and how to weigh them."""

    utts: list[str]  # the global batch's utterance ids
    inputs: tuple  # this rank's tensors, as the task's forward takes them
    count: int  # the global batch's normalizer: the loss is summed / count
    weight: float = 1.0  # 0 when this rank got no utterance of the batch (it runs one that does not count)
    mine: list[int] = field(default_factory=list)  # positions of this rank's utterances in ``utts``


class Task(Protocol):
    """What the loop needs of a model to train it."""

    kind: str  # written into final.pt ('ctc', 'dae')
    prefix: str  # before 'epoch N' in the log ('' or 'DAE ')
    metrics: tuple[str, ...]  # dev metrics in the history besides dev_loss, e.g. ('dev_ter',)
    model: nn.Module
    use_amp: bool  # mixed precision on CUDA
    nonfinite_advice: str  # what to do when too many batches are non-finite

    def lengths(self, split: str) -> list[int]:
        """Frames of each utterance of 'train' or 'dev' (what batches are bucketed by)."""

    def batch(self, indices: list[int], generator: torch.Generator | None, rank: int, world: int) -> Batch:
        """A training batch: collated, augmented (drawing from ``generator``), this rank's part."""

    def forward(self, net: nn.Module, batch: Batch, device: torch.device):
        """The network's outputs on a batch (run under autocast on CUDA)."""

    def loss(self, outputs, batch: Batch, device: torch.device) -> torch.Tensor:
        """The summed loss of this rank's part of the batch."""

    def nonfinite_utterances(self, outputs, batch: Batch, device: torch.device) -> list[str]:
        """The utterances of a batch whose loss is not finite."""

    def dev_sums(self, model: nn.Module, batches: list[list[int]], device: torch.device) -> list[float]:
        """Summed dev measurements over ``batches`` (all-reduced over the ranks)."""

    def dev_metrics(self, sums: list[float]) -> dict[str, float]:
        """dev_loss and the task's metrics from the summed measurements."""


def train(
    task: Task,
    exp_dir: str | Path,
    config: TrainConfig,
    run_hash: str,
    extra: dict | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    log_every: int = 0,
    select_by: str = "loss",
    frozen: list[str] = (),
    freeze_epochs: int = 0,
) -> dict:
    """Train ``task.model`` and write ``epoch-N.pt``, ``history.tsv`` and ``final.pt`` under ``exp_dir``.

    ``extra`` (tokenizer, CMVN, feature config...) is stored in ``final.pt`` so that it is a
    self-contained model. Returns the final checkpoint. ``log_every`` > 0 logs the loss of every
    that many steps. The parameters named in ``frozen`` are not updated during the first
    ``freeze_epochs`` epochs. ``select_by`` (loss or ter) picks the best epochs.

    When ``torch.distributed`` is initialized, this is one rank of a data-parallel run (see the
    module's docstring); every rank must call it with the same data and config, and ``device``
    is this rank's own.
    """
    return Trainer(
        task, Path(exp_dir), config, run_hash, device or distributed.pick_device(), select_by, frozen, freeze_epochs
    ).run(extra or {}, progress, log_every)


class Trainer:
    def __init__(
        self,
        task: Task,
        exp_dir: Path,
        config: TrainConfig,
        run_hash: str,
        device: torch.device,
        select_by: str,
        frozen,
        freeze_epochs: int,
    ):
        self.task, self.exp_dir, self.config, self.run_hash = task, exp_dir, config, run_hash
        self.device, self.select_by, self.freeze_epochs = device, select_by, freeze_epochs
        self.rank, self.world = distributed.rank_and_size()
        self.main = self.rank == 0
        self.model = task.model
        frozen = set(frozen)
        self.frozen_params = [p for name, p in self.model.named_parameters() if name in frozen]
        self.history: list[dict] = []
        self.step, self.start_epoch = 0, 1
        self.columns = ("epoch", "loss", "dev_loss", *task.metrics, "lr", "seconds", "skipped_batches")

    def run(self, extra: dict, progress: bool, log_every: int) -> dict:
        config, model = self.config, self.model
        if self.main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
        model.to(self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.use_amp = self.device.type == "cuda" and self.task.use_amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        resumed = self.resume()
        self.net = model
        if self.world > 1:
            # Parameters are broadcast from rank 0 here; gradients are averaged over the ranks in backward().
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            log.info(
                "data-parallel training: %d processes (%s backend), each global batch split over them",
                self.world,
                dist.get_backend(),
            )
        if self.frozen_params and self.freeze_epochs:
            log.info(
                "%d pretrained tensors frozen for the first %d epoch(s)", len(self.frozen_params), self.freeze_epochs
            )
        self.train_batches = bucket_batches(self.task.lengths("train"), config.batch_frames, config.max_batch)
        self.dev_batches = bucket_batches(self.task.lengths("dev"), config.batch_frames, config.max_batch)
        self.describe()
        if not resumed:
            # Before any step: what the untrained model scores, the bar every epoch must beat.
            log.info("%sdev before training: %s", self.task.prefix, self.format_metrics(self.evaluate()))
        for epoch in range(self.start_epoch, config.max_epochs + 1):
            if should_stop(self.history, config.patience, self.select_by):
                log.info("early stopping: dev %s has not improved for %d epochs", self.select_by, config.patience)
                break
            self.train_epoch(epoch, progress, log_every)
        final = self.finish(extra) if self.main else None
        if self.world == 1:
            return final
        dist.barrier()  # final.pt is written
        return final if self.main else checkpoint.load(self.exp_dir / "final.pt")

    def describe(self) -> None:
        lengths = self.task.lengths("train")
        frames = sum(lengths)
        padded = sum(max(lengths[i] for i in b) * len(b) for b in self.train_batches)
        log.info(
            "%straining on %d utterances (%d frames) in %d batches (padding %.1f%% of frames); dev %d "
            "utterances; %.2f M parameters",
            self.task.prefix,
            len(lengths),
            frames,
            len(self.train_batches),
            100 * (padded - frames) / padded,
            len(self.task.lengths("dev")),
            sum(p.numel() for p in self.model.parameters()) / 1e6,
        )

    def resume(self) -> dict | None:
        """Continue from the newest checkpoint of this run: rank 0 chooses it (moving checkpoints of another
        run aside), every other rank then loads that same file."""
        if self.world == 1:
            resumed = checkpoint.latest_resumable(self.exp_dir, self.run_hash)
        else:
            resumed = checkpoint.latest_resumable(self.exp_dir, self.run_hash) if self.rank == 0 else None
            chosen = distributed.broadcast_from_rank0(resumed["epoch"] if resumed else 0)
            if self.rank != 0 and chosen:
                resumed = checkpoint.load(self.exp_dir / f"epoch-{chosen}.pt")
        if resumed:
            self.model.load_state_dict(resumed["model"])
            self.optimizer.load_state_dict(resumed["optimizer"])
            self.step, self.history = resumed["step"], resumed["history"]
            self.start_epoch = resumed["epoch"] + 1
            log.info(
                "resuming from %s (epoch %d, step %d)",
                self.exp_dir / f"epoch-{resumed['epoch']}.pt",
                resumed["epoch"],
                self.step,
            )
        return resumed

    def train_epoch(self, epoch: int, progress: bool, log_every: int) -> None:
        config, task = self.config, self.task
        # dropout: a function of (seed, epoch) and, beyond rank 0, of the rank
        torch.manual_seed(config.seed * 100003 + epoch + 7919 * self.rank)
        generator = torch.Generator().manual_seed(config.seed * 100019 + epoch)  # augmentation
        self.net.train()
        started = time.time()
        total_loss, count, bad, lr = 0.0, 0, [], learning_rate(self.step, config.lr, config.warmup_steps)
        bar = tqdm(
            epoch_order(self.train_batches, config.seed, epoch),
            desc=f"{task.prefix}epoch {epoch}",
            disable=not (progress and self.main),
            unit="batch",
            mininterval=2.0,
        )
        for indices in bar:
            batch = task.batch(indices, generator, self.rank, self.world)
            self.step += 1
            lr = learning_rate(self.step, config.lr, config.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            summed = self.step_on(batch, epoch, bad)
            if summed is None:
                continue
            total_loss += summed
            count += batch.count
            if log_every and self.step % log_every == 0:
                log.info(
                    "step %d: loss %.6f lr %.3e (%d utterances)", self.step, summed / batch.count, lr, len(batch.utts)
                )
            bar.set_postfix(loss=f"{total_loss / max(count, 1):.3f}", lr=f"{lr:.2e}", refresh=False)
        if bad:
            log.warning(
                "%sepoch %d: skipped %d batch(es) with a non-finite loss: %s", task.prefix, epoch, len(bad), bad[:3]
            )
        row = {
            "epoch": epoch,
            "loss": total_loss / max(count, 1),
            **self.evaluate(),
            "lr": lr,
            "seconds": time.time() - started,
            "skipped_batches": len(bad),
        }
        self.history.append(row)
        log.info(
            "%sepoch %d: loss %.4f %s lr %.2e (%.1f s)",
            task.prefix,
            epoch,
            row["loss"],
            self.format_metrics(row),
            lr,
            row["seconds"],
        )
        if self.main:
            checkpoint.save(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "step": self.step,
                    "epoch": epoch,
                    "history": self.history,
                    "config_hash": self.run_hash,
                },
                self.exp_dir / f"epoch-{epoch}.pt",
            )
            self.write_history()

    def step_on(self, batch: Batch, epoch: int, bad: list) -> float | None:
        """One optimizer step on ``batch``; its summed loss, or None when it was skipped (non-finite)."""
        task, device = self.task, self.device
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.use_amp):
            outputs = task.forward(self.net, batch, device)
        summed = task.loss(outputs, batch, device)
        if self.world == 1:
            loss = summed / batch.count
            finite = bool(torch.isfinite(loss))
        else:
            # This rank's share of the global batch's summed loss; DDP averages gradients over the
            # ranks, hence the factor world: the gradient is that of (summed over all) / count.
            local = summed * batch.weight
            shared = torch.stack([local.detach().double(), (~torch.isfinite(local)).double()])
            dist.all_reduce(shared)
            finite = bool(shared[1] == 0)
            loss = local * self.world / batch.count
        self.optimizer.zero_grad(set_to_none=True)
        if not finite:
            bad.append(task.nonfinite_utterances(outputs, batch, device))
            if len(bad) > self.config.max_bad_batches:
                names = ", ".join(u for b in bad for u in b[:3])
                raise NonFiniteLossError(
                    f"{task.prefix}epoch {epoch}: {len(bad)} batches gave a non-finite loss (more than "
                    f"max_bad_batches={self.config.max_bad_batches}); utterances involved include {names}. "
                    f"{task.nonfinite_advice}"
                )
            return None
        self.scaler.scale(loss).backward()
        if epoch <= self.freeze_epochs:
            for p in self.frozen_params:
                p.grad = None  # AdamW skips a parameter without a gradient: no step, no weight decay
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()) * batch.count if self.world == 1 else float(shared[0])

    def evaluate(self) -> dict[str, float]:
        """dev_loss and the task's metrics; with several ranks, whole batches per rank, sums all-reduced."""
        if self.world == 1:
            sums = self.task.dev_sums(self.model, self.dev_batches, self.device)
        else:
            mine = self.dev_batches[self.rank :: self.world]
            sums = distributed.all_reduce_sums(self.task.dev_sums(self.model, mine, self.device), self.device)
        return self.task.dev_metrics(sums)

    def format_metrics(self, row: dict) -> str:
        parts = [f"dev loss {row['dev_loss']:.4f}"]
        if "dev_ter" in row:
            parts.append(f"dev TER {100 * row['dev_ter']:.2f}%")
        return " ".join(parts)

    def finish(self, extra: dict) -> dict:
        """Average the best checkpoints (by ``select_by``) into a self-contained ``final.pt``."""
        available = {e for e, _ in checkpoint.epoch_checkpoints(self.exp_dir)}
        ranked = best_epochs(self.history, available, self.config.average_best, self.select_by)
        best = [h["epoch"] for h in ranked]
        state = checkpoint.average([self.exp_dir / f"epoch-{e}.pt" for e in best])
        final = save_final(
            self.exp_dir / "final.pt", self.task.kind, state, self.model.config.to_dict(), best, self.history, **extra
        )
        self.write_history()
        log.info(
            "final.pt: average of epochs %s (%s)",
            best,
            "; ".join(
                f"{name.replace('_', ' ').replace('ter', 'TER')} "
                + ", ".join(f"{100 * h[name]:.2f}%" if name == "dev_ter" else f"{h[name]:.4f}" for h in ranked)
                for name in ("dev_loss", *self.task.metrics)
            ),
        )
        return final

    def write_history(self) -> None:
        write_history(self.history, self.exp_dir / "history.tsv", self.columns)


def write_history(history: list[dict], path: Path, columns: tuple[str, ...]) -> None:
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for h in history:
            f.write("\t".join(f"{h[c]:.6g}" if isinstance(h[c], float) else str(h[c]) for c in columns) + "\n")
