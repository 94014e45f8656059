"""The one training loop: bucketed batches read by loader workers, a schedule in steps, checks on the dev
set, checkpoints that resume at the step they were written, early stopping and averaging.

What is trained is a *task* (:class:`Task`): the CTC acoustic model (:mod:`speechrecipe.ctc_task`) or
the denoising autoencoder (:mod:`speechrecipe.dae_task`). A task says how long its utterances are, how a
batch is made (its :class:`BatchMaker`, which runs in the loader's worker processes), what its loss is
and what is measured on the dev set; everything else is here, the same for every task.

Guarantees a user can rely on:

- the batches of an epoch, their order and their augmentation depend on (seed, epoch) alone, and the
  dropout of a step on (seed, step, rank), so a resumed run on the CPU gives the same weights as an
  uninterrupted one;
- a resume point is written every ``checkpoint_every_steps`` steps or ``checkpoint_every_minutes``
  minutes (``step-S.pt``, the newest kept) and at every dev check (``epoch-N.pt``), atomically; a job
  killed at any step (SIGKILL, a SLURM ``TIMEOUT`` or ``NODE_FAIL``) continues, when run again, from
  the newest one of the same run, at the batch where it stopped; SIGTERM writes one before the job ends;
- the schedule is in steps: a run lasts ``max_epochs`` epochs and at least ``min_steps`` steps; the dev
  set is checked at the end of an epoch, at least ``check_every_steps`` apart; early stopping
  (``patience_steps`` behind the best check) never happens during warm-up or before ``min_steps``;
- ``history.tsv`` gains one row per check (epoch, step, loss, dev loss, the task's dev metrics,
  learning rate, seconds, skipped batches); ``final.pt`` averages the best ``average_best`` checks;
- a batch with a non-finite loss is skipped and counted; more than ``max_bad_batches`` in an epoch stop
  training with the utterances named; the end of training warns when the dev output was still all
  blank, or the dev loss still falling fast (:func:`speechrecipe.schedule.training_warnings`).

Data-parallel training (``torch.distributed`` joined by the caller under torchrun;
:mod:`speechrecipe.distributed`) wraps the model in ``DistributedDataParallel`` and keeps the
single-process semantics: every rank builds the same batches in the same order; rank ``r`` of ``W``
reads and trains on utterances ``r, r+W, ...`` of each global batch
(:func:`~speechrecipe.batching.shard_batch`), so an epoch covers every utterance exactly once, and a
rank left without one (a batch smaller than ``W``) runs one with weight 0; each rank's loss is its
part's summed loss times ``W / N`` (``N`` the global batch's normalizer), so the gradient DDP averages
is that of the single-process loss, up to floating-point summation order; a batch with a non-finite
loss on any rank is skipped on all; the dev set is split by whole batches and its sums all-reduced;
only rank 0 writes files and logs, and on resume every rank loads the checkpoint rank 0 picks.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from . import checkpoint, distributed
from .batching import bucket_batches, epoch_order, training_batches
from .config import TrainConfig
from .fileio import atomic_open
from .model.files import save_final
from .schedule import best_checks, learning_rate, should_stop, training_warnings

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """More batches than ``max_bad_batches`` gave a NaN or infinite loss in one epoch."""


class Terminated(SystemExit):
    """SIGTERM arrived (a SLURM time limit, a scancel): a resume point was written and training stopped."""


@dataclass
class Batch:
    """What a task gives the loop for one step: its inputs (this rank's part) and how to weigh them."""

    utts: list[str]  # the global batch's utterance ids
    inputs: tuple  # this rank's tensors, as the task's forward takes them
    count: int  # the global batch's normalizer: the loss is summed / count
    weight: float = 1.0  # 0 when this rank got no utterance of the batch (it runs one that does not count)
    mine: list[int] = field(default_factory=list)  # positions of this rank's utterances in ``utts``
    epoch: int = 0  # where the batch is in the run: its epoch, its place in it, and the epoch's size
    index: int = 0
    epoch_size: int = 0

    def pin_memory(self) -> Batch:
        """The same batch in page-locked memory (the loader calls it on CUDA: faster copies to the GPU)."""
        pinned = tuple(t.pin_memory() if isinstance(t, torch.Tensor) else t for t in self.inputs)
        return dataclasses.replace(self, inputs=pinned)


class BatchMaker(Protocol):
    """Makes a task's training batches; it runs in the loader's worker processes, so it is picklable."""

    def examples(self, epoch: int) -> tuple[list[tuple[int, ...]], list[int]]:
        """The training examples of an epoch and their lengths in frames: each a tuple of utterance indices
        (one utterance, or several joined, see ctc_task), every utterance in exactly one; a function of
        (seed, epoch) alone."""

    def make(self, examples: list[tuple[int, ...]], epoch: int, rank: int, world: int) -> Batch:
        """The batch of these examples (this rank's part), augmented as (seed, epoch, utterance) say."""


class Task(Protocol):
    """What the loop needs of a model to train it."""

    kind: str  # written into final.pt ('ctc', 'dae')
    prefix: str  # before 'epoch N' in the log ('' or 'DAE ')
    metrics: tuple[str, ...]  # dev metrics in the history besides dev_loss, e.g. ('dev_ter',)
    model: nn.Module
    batch_maker: BatchMaker
    use_amp: bool  # mixed precision on CUDA
    nonfinite_advice: str  # what to do when too many batches are non-finite

    def lengths(self, split: str) -> np.ndarray:
        """Frames of each utterance of 'train' or 'dev' (what batches are bucketed by)."""

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


@dataclass
class Progress:
    """Where training is: everything a resume point holds besides the weights and the optimizer."""

    step: int = 0
    epoch: int = 1  # the epoch in progress, or the next one
    position: int = 0  # batches of ``epoch`` already trained on
    history: list[dict] = field(default_factory=list)  # one row per dev check
    loss_sum: float = 0.0  # training loss and utterances since the last check
    count: int = 0
    seconds: float = 0.0  # training time since the last check
    bad: list = field(default_factory=list)  # non-finite batches of the current epoch (their utterances)
    skipped: int = 0  # non-finite batches since the last check
    stopped: bool = False  # early stopping decided

    def to_dict(self) -> dict:
        return dict(vars(self))


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
    freeze_steps: int = 0,
    loader_workers: int = 0,
) -> dict:
    """Train ``task.model`` and write its checkpoints, ``history.tsv`` and ``final.pt`` under ``exp_dir``.

    ``extra`` (tokenizer, CMVN, feature config...) is stored in ``final.pt`` so that it is a
    self-contained model. Returns the final checkpoint. ``log_every`` > 0 logs the loss of every
    that many steps. The parameters named in ``frozen`` are not updated during the first
    ``freeze_steps`` steps. ``select_by`` (loss or ter) picks the best checks. ``loader_workers``
    processes read and prepare the batches ahead of the training step (0: this process does).

    When ``torch.distributed`` is initialized, this is one rank of a data-parallel run (see the
    module's docstring); every rank must call it with the same data and config, and ``device``
    is this rank's own.
    """
    trainer = Trainer(task, Path(exp_dir), config, run_hash, device or distributed.pick_device(), select_by)
    trainer.frozen(frozen, freeze_steps)
    return trainer.run(extra or {}, progress, log_every, loader_workers)


class Trainer:
    def __init__(
        self, task: Task, exp_dir: Path, config: TrainConfig, run_hash: str, device: torch.device, select_by: str
    ):
        self.task, self.exp_dir, self.config, self.run_hash = task, exp_dir, config, run_hash
        self.device, self.select_by = device, select_by
        self.rank, self.world = distributed.rank_and_size()
        self.main = self.rank == 0
        self.model = task.model
        self.state = Progress()
        self.frozen_params, self.freeze_steps = [], 0
        self.columns = ("epoch", "step", "loss", "dev_loss", *task.metrics, "lr", "seconds", "skipped_batches")
        self.terminate = False

    def frozen(self, names, steps: int) -> None:
        names = set(names)
        self.frozen_params = [p for name, p in self.model.named_parameters() if name in names]
        self.freeze_steps = steps

    # --- the run -------------------------------------------------------------------------------------------

    def run(self, extra: dict, progress: bool, log_every: int, loader_workers: int) -> dict:
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
        if self.frozen_params and self.freeze_steps:
            log.info("%d pretrained tensors frozen for the first %d steps", len(self.frozen_params), self.freeze_steps)
        self.dev_batches = bucket_batches(list(self.task.lengths("dev")), config.batch_frames, config.max_batch)
        self.describe()
        if not resumed:
            # Before any step: what the untrained model scores, the bar every check must beat.
            log.info("%sdev before training: %s", self.task.prefix, self.format_metrics(self.evaluate()))
        previous = signal.signal(signal.SIGTERM, self.on_sigterm)
        try:
            self.train_until_done(progress, log_every, loader_workers)
        finally:
            signal.signal(signal.SIGTERM, previous)
        final = self.finish(extra) if self.main else None
        if self.world == 1:
            return final
        dist.barrier()  # final.pt is written
        return final if self.main else checkpoint.load(self.exp_dir / "final.pt")

    def describe(self) -> None:
        examples, lengths = self.task.batch_maker.examples(self.state.epoch)
        plan = epoch_plan(self.task.batch_maker, self.state.epoch, self.config)
        example_length = dict(zip(examples, lengths, strict=True))
        frames = int(sum(lengths))
        padded = sum(max(example_length[e] for e in batch) * len(batch) for batch in plan)
        self.steps_per_epoch = len(plan)
        epochs = max(self.config.max_epochs, math.ceil(self.config.min_steps / len(plan)))
        joined = sum(len(e) > 1 for e in examples)
        log.info(
            "%straining on %d utterances (%d frames%s) in %d batches per epoch (padding %.1f%% of frames); "
            "dev %d utterances; %.2f M parameters; at most %d epochs, at least %d steps",
            self.task.prefix,
            len(self.task.lengths("train")),
            frames,
            f", {joined} examples of joined utterances" if joined else "",
            len(plan),
            100 * max(padded - frames, 0) / max(padded, 1),
            len(self.task.lengths("dev")),
            sum(p.numel() for p in self.model.parameters()) / 1e6,
            epochs,
            self.config.min_steps,
        )

    def done(self) -> bool:
        s, c = self.state, self.config
        # Only between epochs (position 0): a run that reaches min_steps inside an epoch finishes the epoch and
        # its dev check, so the last steps are measured and can be averaged.
        return s.stopped or (s.position == 0 and s.epoch > c.max_epochs and s.step >= c.min_steps)

    def train_until_done(self, progress: bool, log_every: int, loader_workers: int) -> None:
        """Batches from where the run stands to the end, epoch after epoch, through one loader."""
        bar = tqdm(disable=not (progress and self.main), unit="batch", mininterval=2.0)
        while not self.done():
            started = saved = time.time()
            for batch in self.loader(loader_workers):
                self.train_step(batch, log_every)
                s = self.state
                s.position = batch.index + 1
                bar.update()
                bar.set_description(f"{self.task.prefix}epoch {s.epoch}", refresh=False)
                bar.set_postfix(loss=f"{s.loss_sum / max(s.count, 1):.3f}", step=s.step, refresh=False)
                if s.position == batch.epoch_size:
                    s.seconds += time.time() - started
                    started = time.time()
                    self.end_of_epoch()
                    saved = time.time()
                elif self.resume_point_due(saved):
                    s.seconds += time.time() - started
                    started = saved = time.time()
                    self.save_resume_point()
                if self.terminate:
                    s.seconds += time.time() - started
                    self.save_resume_point()
                    raise Terminated(f"SIGTERM: stopped at step {s.step}; a resume point is in {self.exp_dir}")
                if self.done():
                    break
        bar.close()

    def loader(self, workers: int):
        """The batches still to come, in order: a DataLoader over every epoch up to the last one possible."""
        s, c = self.state, self.config
        last_epoch = max(c.max_epochs, s.epoch + math.ceil(max(c.min_steps - s.step, 0) / self.steps_per_epoch) + 1)
        plan = RunBatches(self.task.batch_maker, c, s.epoch, s.position, last_epoch, self.rank, self.world)
        return torch.utils.data.DataLoader(
            plan,
            batch_size=None,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            worker_init_fn=_one_thread,
        )

    def train_step(self, batch: Batch, log_every: int) -> None:
        s, c = self.state, self.config
        if not self.model.training:  # a dev check left it in eval mode (the DDP wrapper does not know)
            self.net.train()
        s.step += 1
        # Dropout: a function of (seed, step) and, beyond rank 0, of the rank: a run resumed at any step
        # draws what the uninterrupted run drew.
        torch.manual_seed(_step_seed(c.seed, s.step, self.rank))
        lr = learning_rate(s.step, c.lr, c.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        summed = self.step_on(batch)
        if summed is None:
            return
        s.loss_sum += summed
        s.count += batch.count
        if log_every and s.step % log_every == 0:
            log.info("step %d: loss %.6f lr %.3e (%d utterances)", s.step, summed / batch.count, lr, len(batch.utts))

    def step_on(self, batch: Batch) -> float | None:
        """One optimizer step on ``batch``; its summed loss, or None when it was skipped (non-finite)."""
        task, device, s = self.task, self.device, self.state
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
            s.bad.append(task.nonfinite_utterances(outputs, batch, device))
            s.skipped += 1
            if len(s.bad) > self.config.max_bad_batches:
                names = ", ".join(u for b in s.bad for u in b[:3])
                raise NonFiniteLossError(
                    f"{task.prefix}epoch {s.epoch}: {len(s.bad)} batches gave a non-finite loss (more than "
                    f"max_bad_batches={self.config.max_bad_batches}); utterances involved include {names}. "
                    f"{task.nonfinite_advice}"
                )
            return None
        self.scaler.scale(loss).backward()
        if s.step <= self.freeze_steps:
            for p in self.frozen_params:
                p.grad = None  # AdamW skips a parameter without a gradient: no step, no weight decay
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()) * batch.count if self.world == 1 else float(shared[0])

    def end_of_epoch(self) -> None:
        """Check the dev set when due (and at the end of the run), then go on to the next epoch."""
        s, c = self.state, self.config
        if s.bad:
            log.warning(
                "%sepoch %d: skipped %d batch(es) with a non-finite loss: %s",
                self.task.prefix,
                s.epoch,
                len(s.bad),
                s.bad[:3],
            )
        last_check = s.history[-1]["step"] if s.history else 0
        final_epoch = s.epoch >= c.max_epochs and s.step >= c.min_steps
        if final_epoch or not c.check_every_steps or s.step - last_check >= c.check_every_steps:
            self.check()
        s.epoch, s.position, s.bad = s.epoch + 1, 0, []

    def check(self) -> None:
        """Measure the dev set, add a history row, write ``epoch-N.pt``, decide on early stopping."""
        s, c = self.state, self.config
        row = {
            "epoch": s.epoch,
            "step": s.step,
            "loss": s.loss_sum / max(s.count, 1),
            **self.evaluate(),
            "lr": learning_rate(s.step, c.lr, c.warmup_steps),
            "seconds": s.seconds,
            "skipped_batches": s.skipped,
        }
        s.history.append(row)
        s.loss_sum, s.count, s.seconds, s.skipped = 0.0, 0, 0.0, 0
        log.info(
            "%sepoch %d: loss %.4f %s lr %.2e (step %d, %.1f s)",
            self.task.prefix,
            s.epoch,
            row["loss"],
            self.format_metrics(row),
            row["lr"],
            s.step,
            row["seconds"],
        )
        s.stopped = should_stop(s.history, c.patience_steps, self.select_by, min_step=max(c.warmup_steps, c.min_steps))
        if s.stopped:
            log.info("early stopping: dev %s has not improved for %d steps", self.select_by, c.patience_steps)
        if self.main:
            # The epoch's batches are done: the resume point is the start of the next epoch.
            self.save(self.exp_dir / f"epoch-{s.epoch}.pt", epoch=s.epoch + 1, position=0, bad=[])
            checkpoint.drop_step_checkpoints(self.exp_dir, s.step)
            self.write_history()

    def resume_point_due(self, last_saved: float) -> bool:
        c, s = self.config, self.state
        by_steps = c.checkpoint_every_steps and s.step % c.checkpoint_every_steps == 0
        by_time = c.checkpoint_every_minutes and time.time() - last_saved >= 60 * c.checkpoint_every_minutes
        return bool(by_steps or by_time)

    def save_resume_point(self) -> None:
        if self.main:
            self.save(self.exp_dir / f"step-{self.state.step}.pt")
            checkpoint.drop_step_checkpoints(self.exp_dir, self.state.step - 1)

    def save(self, path: Path, **overrides) -> None:
        checkpoint.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "progress": {**self.state.to_dict(), **overrides},
                "config_hash": self.run_hash,
            },
            path,
        )

    def on_sigterm(self, signum, frame) -> None:
        log.warning("SIGTERM: writing a resume point after this step, then stopping")
        self.terminate = True

    def resume(self) -> dict | None:
        """Continue from the newest checkpoint of this run: rank 0 chooses it (moving checkpoints of another
        run aside), every other rank then loads that same file."""
        resumed = checkpoint.latest_resumable(self.exp_dir, self.run_hash) if self.main else None
        if self.world > 1:
            chosen = distributed.broadcast_from_rank0(resumed["path"] if resumed else None)
            if not self.main and chosen:
                resumed = checkpoint.load(chosen)
        if not resumed or "progress" not in resumed:
            return None
        self.model.load_state_dict(resumed["model"])
        self.optimizer.load_state_dict(resumed["optimizer"])
        self.scaler.load_state_dict(resumed.get("scaler", {}))
        self.state = s = Progress(**resumed["progress"])
        where = (
            f"epoch {s.epoch}, step {s.step}, batch {s.position}"
            if s.position
            else f"epoch {s.epoch - 1}, step {s.step}"
        )
        log.info("resuming from %s (%s)", resumed.get("path", "the checkpoint"), where)
        return resumed

    # --- measuring and finishing ---------------------------------------------------------------------------

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
        if "dev_empty" in row:
            parts.append(f"empty {100 * row['dev_empty']:.0f}%")
        return " ".join(parts)

    def finish(self, extra: dict) -> dict:
        """Average the best checks (by ``select_by``) into a self-contained ``final.pt``."""
        s = self.state
        available = {e for e, _ in checkpoint.epoch_checkpoints(self.exp_dir)}
        ranked = best_checks(s.history, available, self.config.average_best, self.select_by)
        best = [h["epoch"] for h in ranked]
        state = checkpoint.average([self.exp_dir / f"epoch-{e}.pt" for e in best])
        final = save_final(
            self.exp_dir / "final.pt", self.task.kind, state, self.model.config.to_dict(), best, s.history, **extra
        )
        self.write_history()
        log.info(
            "final.pt: average of epochs %s (%s)",
            best,
            "; ".join(
                f"{name.replace('_', ' ').replace('ter', 'TER')} "
                + ", ".join(f"{100 * h[name]:.2f}%" if name == "dev_ter" else f"{h[name]:.4f}" for h in ranked)
                for name in ("dev_loss", *self.task.metrics)
                if name != "dev_empty"
            ),
        )
        epochs = s.history[-1]["epoch"] if s.history else 0
        log.info(
            "%strained %d steps in %d epochs (%d batches per epoch)",
            self.task.prefix,
            s.step,
            epochs,
            self.steps_per_epoch,
        )
        for warning in training_warnings(s.history):
            log.warning("%s%s", self.task.prefix, warning)
        return final

    def write_history(self) -> None:
        write_history(self.state.history, self.exp_dir / "history.tsv", self.columns)


def epoch_plan(maker: BatchMaker, epoch: int, config: TrainConfig) -> list[list[tuple[int, ...]]]:
    """The batches of an epoch, in the order they are trained on: the epoch's examples bucketed by length
    (at least ``min_batches_per_epoch`` batches), shuffled by (seed, epoch)."""
    examples, lengths = maker.examples(epoch)
    batches = training_batches(lengths, config.batch_frames, config.max_batch, config.min_batches_per_epoch)
    return [[examples[i] for i in batch] for batch in epoch_order(batches, config.seed, epoch)]


class RunBatches(torch.utils.data.IterableDataset):
    """The rest of a run's batches, in order: epoch ``first_epoch`` from batch ``position`` on, then every
    epoch up to ``last_epoch``. Worker ``w`` of ``W`` makes batches ``w, w + W, ...``, which the loader
    takes from the workers in turn, so they arrive in order; what batch ``k`` holds depends on nothing
    but these arguments."""

    def __init__(
        self,
        maker: BatchMaker,
        config: TrainConfig,
        first_epoch: int,
        position: int,
        last_epoch: int,
        rank: int,
        world: int,
    ):
        self.maker, self.config = maker, config
        self.first_epoch, self.position, self.last_epoch = first_epoch, position, last_epoch
        self.rank, self.world = rank, world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        k = 0
        for epoch in range(self.first_epoch, self.last_epoch + 1):
            plan = epoch_plan(self.maker, epoch, self.config)
            for index in range(self.position if epoch == self.first_epoch else 0, len(plan)):
                if k % workers == worker:
                    batch = self.maker.make(plan[index], epoch, self.rank, self.world)
                    batch.epoch, batch.index, batch.epoch_size = epoch, index, len(plan)
                    yield batch
                k += 1


def _one_thread(worker_id: int) -> None:
    """A loader worker prepares batches with one thread: the training process owns the cores."""
    torch.set_num_threads(1)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63)


def write_history(history: list[dict], path: Path, columns: tuple[str, ...]) -> None:
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for h in history:
            f.write(
                "\t".join(f"{h[c]:.6g}" if isinstance(h.get(c), float) else str(h.get(c, "")) for c in columns) + "\n"
            )
