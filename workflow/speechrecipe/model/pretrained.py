"""Starting an acoustic model from trained weights: a DAE's encoder (``am.init: dae``) or another model.

:func:`initialize` is what ``am.init`` does for a path; it returns the names of the copied encoder
tensors, which ``am.train.freeze_steps`` keeps fixed for the first steps.
"""

from __future__ import annotations

import logging

import torch

from ..tokens import Tokenizer
from .files import load_final
from .network import CTCModel

log = logging.getLogger(__name__)


class PretrainedError(ValueError):
    """The pretrained model does not fit the one being trained; the message says why and what to do."""


def initialize(model: CTCModel, pieces: list[str], init: str, features: dict) -> list[str]:
    """Copy pretrained weights into ``model``: a denoising autoencoder's encoder (its final.pt), or a trained
    acoustic model's weights (fine-tuning; output units mapped by token). Returns the names of the copied
    encoder tensors (what am.train.freeze_steps freezes)."""
    pretrained = load_final(init)
    if pretrained.get("kind") == "dae":
        if pretrained.get("feature_config") != features:
            raise PretrainedError(
                f"am.init {init}: the DAE was trained on other features ({pretrained.get('feature_config')}, "
                f"here {features}). Fix: re-run its training (snakemake does when the features change)"
            )
        try:
            copied = initialize_from_dae(model, pretrained["model"])
        except ValueError as e:
            raise PretrainedError(f"am.init {init}: {e}") from e
        log.info(
            "initialized the front end and %d LSTM layer(s) from the DAE %s: %d tensors",
            pretrained["model_config"]["layers"],
            init,
            len(copied),
        )
        return copied
    if pretrained["model_config"]["input_dim"] != model.config.input_dim:
        raise PretrainedError(
            f"am.init {init}: that model takes {pretrained['model_config']['input_dim']}-dim features, these are "
            f"{model.config.input_dim}-dim. Fix: use the same feature config as the pretrained model "
            f"({pretrained['feature_config']})."
        )
    if pretrained.get("feature_config") != features:
        log.warning(
            "am.init %s was trained on other features (%s, here %s)", init, pretrained.get("feature_config"), features
        )
    report = initialize_from(model, pretrained["model"], pieces, Tokenizer(bytes(pretrained["tokenizer"])).pieces)
    log.info(
        "initialized from %s: %d tensors copied, output layer %s, skipped %s",
        init,
        len(report["copied"]),
        report["mapped"] or "not mapped",
        report["skipped"] or "none",
    )
    return [name for name in report["copied"] if name.startswith("encoder.")]


def initialize_from(
    model: CTCModel, state: dict[str, torch.Tensor], pieces: list[str], pretrained_pieces: list[str]
) -> dict[str, list[str]]:
    """Start ``model`` from a pretrained model's weights (fine-tuning).

    Every tensor whose name and shape match is copied. The output layer is
    mapped unit by unit through the token strings, so a model trained with
    another tokenizer still passes on what it knows of the units both share;
    units the pretrained model lacks keep their random initialization.
    Returns what was copied, mapped and skipped, for the log.
    """
    own = model.state_dict()
    report = {"copied": [], "mapped": [], "skipped": []}
    index = {piece: i for i, piece in enumerate(pretrained_pieces)}
    shared = [(i, index[p]) for i, p in enumerate(pieces) if p in index]
    for name, tensor in state.items():
        if name not in own:
            report["skipped"].append(name)
        elif name.startswith("output.") and tensor.shape[1:] == own[name].shape[1:]:
            if shared:
                rows, pretrained_rows = zip(*shared)
                own[name][list(rows)] = tensor[list(pretrained_rows)].to(own[name].dtype)
            report["mapped"].append(f"{name} ({len(shared)}/{len(pieces)} units)")
        elif tensor.shape == own[name].shape:
            own[name] = tensor.to(own[name].dtype)
            report["copied"].append(name)
        else:
            report["skipped"].append(f"{name} (shape {tuple(tensor.shape)} vs {tuple(own[name].shape)})")
    model.load_state_dict(own)
    return report


def initialize_from_dae(model: CTCModel, dae_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy the DAE's encoder (front end and LSTM layers) into the acoustic model; returns the names copied.

    The DAE's encoder tensors have the acoustic model's names (``encoder.layers.0....``), so this is
    a copy by name; a shape that differs is an error (the DAE was trained for another model).
    """
    own = model.state_dict()
    copied = []
    for name, tensor in dae_state.items():
        if not name.startswith("encoder."):
            continue
        if name not in own or own[name].shape != tensor.shape:
            shape = tuple(own[name].shape) if name in own else "missing"
            raise ValueError(
                f"DAE tensor {name} {tuple(tensor.shape)} does not fit the acoustic model ({shape}): "
                "the DAE was trained for another am.model; re-run its training"
            )
        own[name] = tensor.to(own[name].dtype)
        copied.append(name)
    model.load_state_dict(own)
    return copied
