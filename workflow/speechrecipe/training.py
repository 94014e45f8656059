"""The CTC training loop: epochs of bucketed batches, checkpoints, resume, early stopping, averaging.

Guarantees a user can rely on:

- a checkpoint ``epoch-N.pt`` is written atomically after every epoch, and a
  re-run after an interruption (SIGKILL included) continues from the newest
  one made with the same training config;
- the random state is derived from (seed, epoch), so a resumed run on the CPU
  gives the same weights as an uninterrupted one;
- ``history.tsv`` gains one row per epoch (loss, dev loss, dev token error
  rate, learning rate, seconds);
- training stops early when the dev loss (or, with ``select_by: ter``, the
  dev token error rate) has not improved for ``patience`` epochs, and
  ``final.pt`` is the average of the best ``average_best`` checkpoints by the
  same criterion.

Data-parallel training (``torch.distributed`` initialized by the caller, e.g. under
``torchrun``; see ``workflow/scripts/train_am.py``) wraps the model in
``DistributedDataParallel`` and keeps the single-process semantics:

- every rank builds the same length-bucketed batches in the same (seed, epoch)
  order; each step, rank ``r`` of ``W`` takes utterances ``r, r+W, r+2W, ...`` of
  the *same* global batch (:func:`~speechrecipe.dataset.shard_batch`), so an epoch
  covers every utterance exactly once, none dropped or repeated. A rank left
  without an utterance (a batch smaller than ``W``) runs one with weight 0;
- SpecAugment is drawn for the whole global batch on every rank before it is
  split, so each utterance gets the masks it gets in a single process;
- each rank's loss is its utterances' summed CTC loss times ``W / B`` (``B`` the
  global batch size): DDP averages gradients over the ``W`` ranks, so the
  gradient is that of the single-process loss (summed CTC / ``B``) of the same
  batch, up to floating-point summation order; clipping, the learning rate and
  the step count are therefore the same too;
- the dev set is split by whole batches and its sums are all-reduced; a batch
  with a non-finite loss on any rank is skipped on all of them;
- only rank 0 writes ``epoch-N.pt``, ``history.tsv`` and ``final.pt`` and logs;
  on resume rank 0 picks the checkpoint and every rank loads that same file.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from . import checkpoint
from .dataset import FeatureSet, bucket_batches, collate, epoch_order, shard_batch, spec_augment
from .decoding import greedy_ids
from .fileio import atomic_open
from .model import CTCModel
from .scoring import edit_distance

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    max_epochs: int = 30
    batch_frames: int = 20000  # padded input frames per batch
    max_batch: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-2
    grad_clip: float = 5.0
    patience: int = 5
    average_best: int = 3
    seed: int = 1
    specaug: dict = field(default_factory=lambda: {"freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 0.05})
    max_bad_batches: int = 10  # non-finite losses tolerated per epoch before training stops
    # What "best epoch" means for early stopping and checkpoint averaging: the dev CTC loss, or the
    # dev greedy token error rate (ties broken by dev loss). On unseen speakers the dev loss of a CTC
    # model often rises (over-confident wrong frames) while its error rate still falls, so 'loss'
    # can stop, and average, at the all-blank stage.
    select_by: str = "loss"
    # Epochs during which the pretrained part of the model (the weights copied by ``am.init``, e.g. the
    # DAE's encoder) is not updated, so that the randomly initialized layers above it settle first.
    freeze_epochs: int = 0

    # Keys that only say how long to train or how to finish: changing them
    # continues from the existing checkpoints instead of starting over (ESPnet #5601).
    NOT_HASHED = ("max_epochs", "patience", "average_best", "max_bad_batches", "select_by")
    # Keys added after checkpoints already existed: left out of the hash at these values, so that
    # those checkpoints stay resumable (workflow/rules/am.smk leaves them out of the rule's params too).
    HASHED_UNLESS = {"freeze_epochs": 0}

    def hashed(self) -> dict:
        """What identifies the training run (the rest only says how long to train or how to finish)."""
        return {k: v for k, v in vars(self).items()
                if k not in self.NOT_HASHED and not (k in self.HASHED_UNLESS and self.HASHED_UNLESS[k] == v)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def learning_rate(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then inverse-square-root decay.

    It does not depend on the total number of steps, so raising ``max_epochs``
    and resuming keeps the schedule of the steps already taken.
    """
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step)) if warmup > 0 else peak


def pick_device(use_gpu: bool | str = "auto") -> torch.device:
    if use_gpu in (True, "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if use_gpu is True:
        log.warning("use_gpu is on but no CUDA device is visible: training on the CPU")
    return torch.device("cpu")


class NonFiniteLossError(RuntimeError):
    pass


def distributed_rank_and_size() -> tuple[int, int]:
    """(rank, world size) of this process in an initialized ``torch.distributed`` group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate(model: CTCModel, data: FeatureSet, batches, device) -> tuple[float, float]:
    """Mean CTC loss per utterance and greedy token error rate on a data set."""
    total_loss, total_errors, total_tokens, count = evaluate_sums(model, data, batches, device)
    return total_loss / max(count, 1), total_errors / max(total_tokens, 1)


def evaluate_distributed(model: CTCModel, data: FeatureSet, batches, device, rank: int,
                         world_size: int) -> tuple[float, float]:
    """:func:`evaluate` with the batches split over the ranks (whole batches); every rank gets the totals."""
    sums = evaluate_sums(model, data, batches[rank::world_size], device)
    totals = torch.tensor(sums, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    total_loss, total_errors, total_tokens, count = totals.tolist()
    return total_loss / max(count, 1), total_errors / max(total_tokens, 1)


def evaluate_sums(model: CTCModel, data: FeatureSet, batches, device) -> tuple[float, int, int, int]:
    """Summed CTC loss, token errors, reference tokens and utterances over ``batches``."""
    model.eval()
    total_loss, total_errors, total_tokens, count = 0.0, 0, 0, 0
    with torch.no_grad():
        for batch in batches:
            utts = [data.utterances[i] for i in batch]
            feats, lengths, targets, target_lengths = collate(utts)
            log_probs, out_lengths = model(feats.to(device), lengths.to(device))
            loss = torch.nn.functional.ctc_loss(
                log_probs.float().transpose(0, 1), targets, out_lengths.cpu(), target_lengths,
                blank=0, reduction="sum", zero_infinity=True)
            total_loss += float(loss)
            count += len(utts)
            for u, hyp in zip(utts, greedy_ids(log_probs.cpu(), out_lengths.cpu())):
                total_errors += edit_distance(u.tokens, hyp)
                total_tokens += len(u.tokens)
    return total_loss, total_errors, total_tokens, count


def train(model: CTCModel, train_set: FeatureSet, dev_set: FeatureSet, exp_dir: str | Path,
          config: TrainConfig, config_hash: str, extra: dict | None = None,
          device: torch.device | None = None, progress: bool = True, log_every: int = 0,
          frozen: list[str] = ()) -> dict:
    """Train ``model`` and write ``epoch-N.pt``, ``history.tsv`` and ``final.pt`` under ``exp_dir``.

    ``extra`` (tokenizer, CMVN, feature config...) is stored in ``final.pt`` so
    that it is a self-contained model. Returns the final checkpoint. ``log_every``
    > 0 logs the loss of every that many steps (of the global batch). The parameters named in
    ``frozen`` are not updated during the first ``config.freeze_epochs`` epochs.

    When ``torch.distributed`` is initialized, this is one rank of a data-parallel
    run (see the module's docstring); every rank must call it with the same data
    and config, and ``device`` is this rank's own.
    """
    exp_dir = Path(exp_dir)
    rank, world = distributed_rank_and_size()
    main = rank == 0
    if main:
        exp_dir.mkdir(parents=True, exist_ok=True)
    device = device or pick_device()
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    history: list[dict] = []
    step, start_epoch = 0, 1
    resumed = _resume_point(exp_dir, config_hash, rank, world)
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        step, history = resumed["step"], resumed["history"]
        start_epoch = resumed["epoch"] + 1
        log.info("resuming from %s (epoch %d, step %d)", exp_dir / f"epoch-{resumed['epoch']}.pt", resumed["epoch"], step)
    net = model
    if world > 1:
        # Parameters are broadcast from rank 0 here; gradients are averaged over the ranks in backward().
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        log.info("data-parallel training: %d processes (%s backend), each global batch split over them",
                 world, dist.get_backend())

    frozen_params = [p for name, p in model.named_parameters() if name in set(frozen)]
    if frozen_params and config.freeze_epochs:
        log.info("%d pretrained tensors frozen for the first %d epoch(s)", len(frozen_params), config.freeze_epochs)
    train_batches = bucket_batches([len(u.feats) for u in train_set.utterances], config.batch_frames, config.max_batch)
    dev_batches = bucket_batches([len(u.feats) for u in dev_set.utterances], config.batch_frames, config.max_batch)
    frames = sum(len(u.feats) for u in train_set.utterances)
    padded = sum(max(len(train_set.utterances[i].feats) for i in b) * len(b) for b in train_batches)
    log.info("training on %d utterances (%d frames) in %d batches (padding %.1f%% of frames); dev %d utterances",
             len(train_set), frames, len(train_batches), 100 * (padded - frames) / padded, len(dev_set))

    for epoch in range(start_epoch, config.max_epochs + 1):
        if _should_stop(history, config.patience, config.select_by):
            log.info("early stopping: dev %s has not improved for %d epochs", config.select_by, config.patience)
            break
        # dropout: a function of (seed, epoch) and, beyond rank 0, of the rank
        torch.manual_seed(config.seed * 100003 + epoch + 7919 * rank)
        generator = torch.Generator().manual_seed(config.seed * 100019 + epoch)  # SpecAugment
        net.train()
        started = time.time()
        total_loss, count, bad = 0.0, 0, []
        bar = tqdm(epoch_order(train_batches, config.seed, epoch), desc=f"epoch {epoch}",
                   disable=not (progress and main), unit="batch", mininterval=2.0)
        for batch in bar:
            utts = [train_set.utterances[i] for i in batch]
            feats, lengths, targets, target_lengths = collate(utts)
            if config.specaug:
                feats = spec_augment(feats, lengths, generator, **config.specaug)
            if world > 1:
                feats, lengths, targets, target_lengths, weight = _rank_part(
                    utts, feats, lengths, target_lengths, rank, world)
            step += 1
            lr = learning_rate(step, config.lr, config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                log_probs, out_lengths = net(feats.to(device), lengths.to(device))
            summed = torch.nn.functional.ctc_loss(
                log_probs.float().transpose(0, 1), targets.to(device), out_lengths, target_lengths.to(device),
                blank=0, reduction="sum", zero_infinity=True)
            if world == 1:
                loss = summed / len(utts)
                finite = bool(torch.isfinite(loss))
            else:
                # This rank's share of the global batch's summed loss; DDP averages gradients over the
                # ranks, hence the factor world: the gradient is that of (summed over all) / len(utts).
                local = summed * weight
                shared = torch.stack([local.detach().double(), (~torch.isfinite(local)).double()])
                dist.all_reduce(shared)
                finite = bool(shared[1] == 0)
                loss = local * world / len(utts)
            if not finite:
                bad.append(_nonfinite_utterances(utts, log_probs, out_lengths, targets, target_lengths, device,
                                                 rank, world))
                optimizer.zero_grad(set_to_none=True)
                if len(bad) > config.max_bad_batches:
                    names = ", ".join(u for b in bad for u in b[:3])
                    raise NonFiniteLossError(
                        f"epoch {epoch}: {len(bad)} batches gave a non-finite loss (more than max_bad_batches="
                        f"{config.max_bad_batches}); utterances involved include {names}. Check their audio and "
                        "transcripts, or lower the learning rate.")
                continue
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if epoch <= config.freeze_epochs:
                for p in frozen_params:
                    p.grad = None  # AdamW skips a parameter without a gradient: no step, no weight decay
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            batch_loss = float(loss.detach()) * len(utts) if world == 1 else float(shared[0])
            total_loss += batch_loss
            count += len(utts)
            if log_every and step % log_every == 0:
                log.info("step %d: loss %.6f lr %.3e (%d utterances)", step, batch_loss / len(utts), lr, len(utts))
            bar.set_postfix(loss=f"{total_loss / max(count, 1):.3f}", lr=f"{lr:.2e}", refresh=False)
        if bad:
            log.warning("epoch %d: skipped %d batch(es) with a non-finite loss: %s", epoch, len(bad), bad[:3])
        if world == 1:
            dev_loss, dev_ter = evaluate(model, dev_set, dev_batches, device)
        else:
            dev_loss, dev_ter = evaluate_distributed(model, dev_set, dev_batches, device, rank, world)
        history.append({"epoch": epoch, "loss": total_loss / max(count, 1), "dev_loss": dev_loss,
                        "dev_ter": dev_ter, "lr": lr, "seconds": time.time() - started, "skipped_batches": len(bad)})
        log.info("epoch %d: loss %.4f dev loss %.4f dev TER %.2f%% lr %.2e (%.1f s)", epoch,
                 history[-1]["loss"], dev_loss, 100 * dev_ter, lr, history[-1]["seconds"])
        if main:
            checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "epoch": epoch, "history": history, "config_hash": config_hash},
                            exp_dir / f"epoch-{epoch}.pt")
            write_history(history, exp_dir / "history.tsv")

    if world == 1:
        return finish(model, exp_dir, history, config, extra or {})
    final = finish(model, exp_dir, history, config, extra or {}) if main else None
    dist.barrier()  # final.pt is written
    return final if main else checkpoint.load(exp_dir / "final.pt")


def _resume_point(exp_dir: Path, config_hash: str, rank: int, world: int) -> dict | None:
    """The checkpoint to resume from: rank 0 chooses it (moving checkpoints of another config aside),
    every other rank then loads that same file."""
    if world == 1:
        return checkpoint.latest_resumable(exp_dir, config_hash)
    resumed = checkpoint.latest_resumable(exp_dir, config_hash) if rank == 0 else None
    chosen = [resumed["epoch"] if resumed else 0]
    dist.broadcast_object_list(chosen, src=0)
    if rank == 0 or chosen[0] == 0:
        return resumed
    return checkpoint.load(exp_dir / f"epoch-{chosen[0]}.pt")


def _nonfinite_utterances(utts, log_probs, out_lengths, targets, target_lengths, device, rank, world) -> list[str]:
    """The utterances of a batch whose own CTC loss is not finite (all of this rank's when none is alone)."""
    mine = utts if world == 1 else [utts[i] for i in shard_batch(list(range(len(utts))), rank, world)]
    with torch.no_grad():
        per_utterance = torch.nn.functional.ctc_loss(
            log_probs.float().transpose(0, 1), targets.to(device), out_lengths, target_lengths.to(device),
            blank=0, reduction="none", zero_infinity=True)
    named = [u.utt for u, loss in zip(mine, per_utterance.tolist()) if not math.isfinite(loss)]
    return named or [u.utt for u in mine]


def _rank_part(utts: list, feats: torch.Tensor, lengths: torch.Tensor, target_lengths: torch.Tensor,
               rank: int, world: int):
    """This rank's utterances of a collated (and augmented) global batch, padding trimmed to them.

    Returns (feats, lengths, targets, target_lengths, weight): weight 0 means the batch has fewer
    utterances than there are ranks and this rank got none; it then runs the batch's first utterance,
    whose loss counts 0, so that it still takes part in the gradient all-reduce.
    """
    mine = shard_batch(list(range(len(utts))), rank, world)
    weight = 1.0 if mine else 0.0
    mine = mine or [0]
    index = torch.tensor(mine)
    lengths = lengths[index]
    feats = feats[index, : int(lengths.max())]
    targets = torch.tensor([t for i in mine for t in utts[i].tokens], dtype=torch.long)
    return feats, lengths, targets, target_lengths[index], weight


def _rank_key(select_by: str):
    """Sort key of a history row, smaller is better: dev loss, or dev TER then dev loss."""
    if select_by == "loss":
        return lambda h: h["dev_loss"]
    if select_by == "ter":
        return lambda h: (h["dev_ter"], h["dev_loss"])
    raise ValueError(f"unknown select_by '{select_by}' (use loss or ter)")


def _should_stop(history: list[dict], patience: int, select_by: str = "loss") -> bool:
    if patience <= 0 or len(history) <= patience:
        return False
    best_epoch = min(history, key=_rank_key(select_by))["epoch"]
    return history[-1]["epoch"] - best_epoch >= patience


def finish(model: CTCModel, exp_dir: Path, history: list[dict], config: TrainConfig, extra: dict) -> dict:
    """Average the best checkpoints (by dev loss or dev TER, see ``select_by``) into a self-contained ``final.pt``."""
    available = {e for e, _ in checkpoint.epoch_checkpoints(exp_dir)}
    ranked = sorted((h for h in history if h["epoch"] in available), key=_rank_key(config.select_by))
    best = [h["epoch"] for h in ranked[: max(config.average_best, 1)]]
    state = checkpoint.average([exp_dir / f"epoch-{e}.pt" for e in best])
    final = {"model": state, "model_config": model.config.to_dict(), "averaged_epochs": best,
             "history": history, **extra}
    checkpoint.save(final, exp_dir / "final.pt")
    write_history(history, exp_dir / "history.tsv")
    log.info("final.pt: average of epochs %s (dev loss %s; dev TER %s)", best,
             ", ".join(f"{h['dev_loss']:.3f}" for h in ranked[: len(best)]),
             ", ".join(f"{100 * h['dev_ter']:.2f}%" for h in ranked[: len(best)]))
    return final


HISTORY_COLUMNS = ("epoch", "loss", "dev_loss", "dev_ter", "lr", "seconds", "skipped_batches")


def write_history(history: list[dict], path: Path, columns=HISTORY_COLUMNS) -> None:
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for h in history:
            f.write("\t".join(f"{h[c]:.6g}" if isinstance(h[c], float) else str(h[c]) for c in columns) + "\n")
