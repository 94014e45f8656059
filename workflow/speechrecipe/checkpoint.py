"""Training checkpoints: atomic save, safe load, resume point, averaging.

Two kinds, both complete resume points (model, optimizer, step, position in the epoch,
history): ``epoch-N.pt``, written at each dev check (at the end of epoch N), which
``final.pt`` averages; and ``step-S.pt``, written every so many steps or minutes
inside an epoch (the newest alone is kept), so that a job killed at any point loses
minutes, not an epoch.

Checkpoints hold tensors, numbers, strings and lists only, and are always
loaded with ``weights_only=True``: a checkpoint is data, and a crafted pickle
in one is refused rather than executed. What a *trained* model is on disk
(``final.pt``, bundles) is :mod:`speechrecipe.model.files`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from .fileio import atomic_path

log = logging.getLogger(__name__)

EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is truncated, corrupt or not a checkpoint of this recipe."""


def save(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file, renamed into place when complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a truncated or foreign file raises CheckpointError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(e).__name__}: {e})") from e


def epoch_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every ``epoch-N.pt`` in ``directory``, oldest first."""
    return _numbered(directory, EPOCH_FILE)


def step_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step-S.pt`` in ``directory``, oldest first."""
    return _numbered(directory, STEP_FILE)


def _numbered(directory, pattern) -> list[tuple[int, Path]]:
    found = []
    for p in Path(directory).glob("*.pt"):
        m = pattern.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def resume_candidates(directory: str | Path) -> list[Path]:
    """Checkpoints to resume from, newest first: step files (newer than every epoch file, see
    :func:`drop_step_checkpoints`), then epoch files."""
    return [p for _, p in reversed(step_checkpoints(directory))] + [
        p for _, p in reversed(epoch_checkpoints(directory))
    ]


def drop_step_checkpoints(directory: str | Path, up_to: int) -> None:
    """Delete the step checkpoints of steps up to ``up_to`` (a newer checkpoint holds all they did)."""
    for step, path in step_checkpoints(directory):
        if step <= up_to:
            path.unlink(missing_ok=True)


def latest_resumable(directory: str | Path, expected_hash: str) -> dict | None:
    """The newest checkpoint that loads and was made for the same training run (``config_hash``).

    A truncated file (a job killed while the file system was syncing, say) is
    skipped with a warning, and the one before it is used instead.
    Checkpoints of another run are moved aside (never deleted) so that a
    changed model starts cleanly without losing the user's earlier run.
    """
    directory = Path(directory)
    # Temporary files of a save that was killed half-way (fileio.atomic_path): never a checkpoint.
    for leftover in [*directory.glob(".epoch-*.pt.*.tmp"), *directory.glob(".step-*.pt.*.tmp")]:
        log.warning("removing %s, left by an interrupted save", leftover.name)
        leftover.unlink(missing_ok=True)
    for path in resume_candidates(directory):
        try:
            ckpt = load(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        if ckpt.get("config_hash") != expected_hash:
            aside = directory / f"previous-{ckpt.get('config_hash', 'unknown')}"
            aside.mkdir(exist_ok=True)
            for old in resume_candidates(directory):
                old.rename(aside / old.name)
            log.warning(
                "training config changed since %s was written: earlier checkpoints moved to %s; starting from scratch",
                path.name,
                aside,
            )
            return None
        ckpt["path"] = str(path)
        return ckpt
    return None


def average(paths: list[Path], key: str = "model") -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights of several checkpoints (integer buffers taken from the last)."""
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        state = load(path)[key]
        for name, tensor in state.items():
            if tensor.is_floating_point():
                total[name] = total.get(name, 0) + tensor.double()
            else:
                total[name] = tensor
    return {name: (t / len(paths)).float() if t.is_floating_point() else t for name, t in total.items()}
