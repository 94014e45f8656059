"""The training schedule: learning rate per step, early stopping, and which epochs are best.

Nothing here depends on the total number of steps, so raising ``max_epochs`` and resuming
keeps the schedule of the steps already taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def learning_rate(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then inverse-square-root decay."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step)) if warmup > 0 else peak


def rank_key(select_by: str) -> Callable[[dict], tuple | float]:
    """Sort key of a history row, smaller is better: dev loss, or dev TER then dev loss."""
    if select_by == "loss":
        return lambda h: h["dev_loss"]
    if select_by == "ter":
        return lambda h: (h["dev_ter"], h["dev_loss"])
    raise ValueError(f"unknown select_by '{select_by}' (use loss or ter)")


def should_stop(history: list[dict], patience: int, select_by: str = "loss") -> bool:
    """Whether the best epoch by ``select_by`` lies ``patience`` epochs or more behind the last one."""
    if patience <= 0 or len(history) <= patience:
        return False
    best_epoch = min(history, key=rank_key(select_by))["epoch"]
    return history[-1]["epoch"] - best_epoch >= patience


def best_epochs(history: list[dict], available: set[int], count: int, select_by: str = "loss") -> list[dict]:
    """The ``count`` best rows of ``history`` among the epochs whose checkpoints are ``available``, best first."""
    ranked = sorted((h for h in history if h["epoch"] in available), key=rank_key(select_by))
    return ranked[: max(count, 1)]
