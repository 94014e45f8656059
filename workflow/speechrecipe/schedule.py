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


def should_stop(history: list[dict], patience_steps: int, select_by: str = "loss", min_step: int = 0) -> bool:
    """Whether the best check by ``select_by`` lies ``patience_steps`` steps or more behind the last one.

    Never before ``min_step`` (the end of warm-up, and the run's minimum length): a model still in
    the all-blank phase of CTC training has flat dev scores that would otherwise stop it there.
    """
    if patience_steps <= 0 or not history or history[-1]["step"] < min_step:
        return False
    best = min(history, key=rank_key(select_by))
    return history[-1]["step"] - best["step"] >= patience_steps


def best_checks(history: list[dict], available: set[int], count: int, select_by: str = "loss") -> list[dict]:
    """The ``count`` best checks of ``history`` among those whose checkpoints are ``available`` (by epoch), best first."""
    ranked = sorted((h for h in history if h["epoch"] in available), key=rank_key(select_by))
    return ranked[: max(count, 1)]


# A run whose dev loss fell by more than this fraction over its last quarter had not converged, unless that fall
# is a negligible share of the whole run's (a loss going 0.0013 -> 0.0008 after 5.0 -> 0.0013 has converged).
STILL_FALLING = 0.10
NEGLIGIBLE_SHARE = 0.05


def training_warnings(history: list[dict]) -> list[str]:
    """What a user must know about how a run ended: the dev output still all blank (training never really
    started), or the dev loss still falling fast (it stopped too early); empty when neither."""
    if not history:
        return ["no dev check was made: the run had no complete epoch"]
    warnings = []
    last = history[-1]
    if last.get("dev_empty", 0.0) >= 1.0:
        warnings.append(
            f"WARNING: training stopped at step {last['step']} while the dev output was still all blank (every dev "
            "utterance decodes to nothing): the model never left CTC's all-blank phase. Fix: train longer (raise "
            "am.train.min_steps), check am.train.lr and warmup_steps, or look at the data (transcripts, lengths)."
        )
    quarter = [h for h in history if h["step"] >= 0.75 * last["step"]]
    earlier = [h for h in history if h["step"] < 0.75 * last["step"]]
    if earlier and quarter:
        # Best against best: a noisy dev loss that rose and wobbles back down in the last quarter is not falling.
        before, lowest = min(h["dev_loss"] for h in earlier), min(h["dev_loss"] for h in quarter)
        fall = (before - lowest) / max(abs(before), 1e-9)
        share = (before - lowest) / max(history[0]["dev_loss"] - lowest, 1e-9)
        if fall > STILL_FALLING and share > NEGLIGIBLE_SHARE:
            warnings.append(
                f"WARNING: the dev loss was still falling fast when training stopped ({before:.4g} -> "
                f"{min(h['dev_loss'] for h in quarter):.4g} over the last quarter of its {last['step']} steps): it "
                "had not converged. Fix: raise am.train.min_steps or max_epochs (training continues from where "
                "it stopped)."
            )
    return warnings
