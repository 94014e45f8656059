"""The denoising autoencoder's training loop (the model: :mod:`speechrecipe.dae`).

It has the guarantees of the acoustic model's loop (:mod:`speechrecipe.training`):
``epoch-N.pt`` written atomically every epoch and resumed from after an
interruption when the config hash matches, a random state that is a function
of (seed, epoch), ``history.tsv`` (epoch, loss, dev loss, lr, seconds,
skipped batches), non-finite losses skipped and counted, early stopping on the
dev loss, and ``final.pt`` the average of the best epochs by dev loss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint
from .dae import DenoisingAutoencoder, ParallelUtterance, collate_pairs, reconstruction_loss
from .dataset import bucket_batches, epoch_order
from .training import NonFiniteLossError, _should_stop, learning_rate, pick_device, write_history

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "dev_loss", "lr", "seconds", "skipped_batches")


@dataclass
class DAETrainConfig:
    max_epochs: int = 10
    batch_frames: int = 4000
    max_batch: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-2
    grad_clip: float = 5.0
    patience: int = 3
    average_best: int = 2
    seed: int = 1
    max_bad_batches: int = 10

    NOT_HASHED = ("max_epochs", "patience", "average_best", "max_bad_batches")

    @classmethod
    def from_dict(cls, d: dict) -> "DAETrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def evaluate(model: DenoisingAutoencoder, pairs, batches, device) -> float:
    """Mean squared error per feature value on a set."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            noisy, clean, lengths = collate_pairs([pairs[i] for i in batch])
            summed, values = reconstruction_loss(model, noisy.to(device), clean.to(device), lengths.to(device))
            total += float(summed)
            count += values
    return total / max(count, 1)


def train(model: DenoisingAutoencoder, train_pairs: list[ParallelUtterance], dev_pairs: list[ParallelUtterance],
          exp_dir: str | Path, config: DAETrainConfig, config_hash: str, extra: dict | None = None,
          device: torch.device | None = None, progress: bool = True) -> dict:
    """Train the DAE; write ``epoch-N.pt``, ``history.tsv`` and ``final.pt`` under ``exp_dir``. Returns final."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    device = device or pick_device()
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    step, start_epoch = 0, 1
    resumed = checkpoint.latest_resumable(exp_dir, config_hash)
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        step, history, start_epoch = resumed["step"], resumed["history"], resumed["epoch"] + 1
        log.info("resuming from %s (epoch %d, step %d)", exp_dir / f"epoch-{resumed['epoch']}.pt", resumed["epoch"], step)
    train_batches = bucket_batches([len(p.noisy) for p in train_pairs], config.batch_frames, config.max_batch)
    dev_batches = bucket_batches([len(p.noisy) for p in dev_pairs], config.batch_frames, config.max_batch)
    log.info("DAE: %d training pairs in %d batches, %d dev pairs; %.2f M parameters", len(train_pairs),
             len(train_batches), len(dev_pairs), sum(p.numel() for p in model.parameters()) / 1e6)
    if not resumed:
        # Epoch 0: what copying the noisy input would score (the encoder is random): the bar to beat.
        log.info("dev loss before training: %.4f", evaluate(model, dev_pairs, dev_batches, device))
    for epoch in range(start_epoch, config.max_epochs + 1):
        if _should_stop(history, config.patience, "loss"):
            log.info("early stopping: dev loss has not improved for %d epochs", config.patience)
            break
        torch.manual_seed(config.seed * 100003 + epoch)  # dropout: a function of (seed, epoch)
        model.train()
        started, total, count, bad = time.time(), 0.0, 0, []
        bar = tqdm(epoch_order(train_batches, config.seed, epoch), desc=f"DAE epoch {epoch}", disable=not progress,
                   unit="batch", mininterval=2.0)
        for batch in bar:
            pairs = [train_pairs[i] for i in batch]
            noisy, clean, lengths = collate_pairs(pairs)
            step += 1
            lr = learning_rate(step, config.lr, config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            summed, values = reconstruction_loss(model, noisy.to(device), clean.to(device), lengths.to(device))
            loss = summed / max(values, 1)
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                bad.append([p.utt for p in pairs])
                if len(bad) > config.max_bad_batches:
                    names = ", ".join(u for b in bad for u in b[:2])
                    raise NonFiniteLossError(f"DAE epoch {epoch}: {len(bad)} batches gave a non-finite loss (more than "
                                             f"max_bad_batches={config.max_bad_batches}); utterances involved "
                                             f"include {names}. Check their audio, or lower dae.train.lr.")
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += float(summed.detach())
            count += values
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}", lr=f"{lr:.2e}", refresh=False)
        if bad:
            log.warning("DAE epoch %d: skipped %d batch(es) with a non-finite loss: %s", epoch, len(bad), bad[:3])
        dev_loss = evaluate(model, dev_pairs, dev_batches, device)
        history.append({"epoch": epoch, "loss": total / max(count, 1), "dev_loss": dev_loss, "lr": lr,
                        "seconds": time.time() - started, "skipped_batches": len(bad)})
        log.info("DAE epoch %d: loss %.4f dev loss %.4f lr %.2e (%.1f s)", epoch, history[-1]["loss"], dev_loss, lr,
                 history[-1]["seconds"])
        checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "epoch": epoch, "history": history, "config_hash": config_hash}, exp_dir / f"epoch-{epoch}.pt")
        write_history(history, exp_dir / "history.tsv", HISTORY_COLUMNS)
    available = {e for e, _ in checkpoint.epoch_checkpoints(exp_dir)}
    ranked = sorted((h for h in history if h["epoch"] in available), key=lambda h: h["dev_loss"])
    best = [h["epoch"] for h in ranked[: max(config.average_best, 1)]]
    final = {"kind": "dae", "model": checkpoint.average([exp_dir / f"epoch-{e}.pt" for e in best]),
             "model_config": model.config.to_dict(), "averaged_epochs": best, "history": history, **(extra or {})}
    checkpoint.save(final, exp_dir / "final.pt")
    write_history(history, exp_dir / "history.tsv", HISTORY_COLUMNS)
    log.info("final.pt: average of epochs %s (dev loss %s)", best, ", ".join(f"{h['dev_loss']:.4f}" for h in ranked[: len(best)]))
    return final
