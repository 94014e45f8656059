"""Exports of a trained acoustic model's network: TorchScript and ONNX, checked against PyTorch.

TorchScript (``model.ts``) and ONNX (``model.onnx``) hold the network alone:

    inputs   feats    float32 (batch, time, dim)  features already normalized with the model's CMVN
             lengths  int64   (batch,)            real frames per utterance
    outputs  log_probs    float32 (batch, frames, vocab)  CTC log-probabilities, blank = 0
             out_lengths  int64   (batch,)                real output frames per utterance

Batch and time are dynamic. Frames past an utterance's ``out_lengths`` are padding
(the exported graph keeps every subsampled frame of the padded batch; the PyTorch
model trims to the longest utterance), and the real frames are exactly those of
the utterance decoded alone.

:func:`verify` checks that the exports (and a bundle, :mod:`speechrecipe.model.files`)
give the PyTorch model's outputs on real audio; :func:`verify_int8` measures how far the int8
models (:mod:`speechrecipe.model.quantize`) are from them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_path

log = logging.getLogger(__name__)

ONNX_OPSET = 17


class ExportError(RuntimeError):
    """An export could not be written, or does not give the PyTorch model's outputs."""


# --- the network for export ---------------------------------------------------


class InferenceModel(nn.Module):
    """The acoustic model's inference path (eval mode), written to be scriptable and traceable.

    The same modules and weights as ``CTCModel``; dropout is left out (it is the
    identity at inference) and the output is not trimmed to the longest
    utterance, which would need a data-dependent shape.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.subsampling = model.encoder.subsampling
        self.layers = model.encoder.layers
        self.output = model.output

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.subsampling(feats, lengths)
        lengths = lengths.clamp(max=x.shape[1])
        for layer in self.layers:
            x = layer(x, lengths)
        return self.output(x).log_softmax(dim=-1), lengths


def _example_inputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances of different lengths, so that padding and the length-dependent gathers are exercised."""
    frames = max(50, 4 * model.min_input_frames())
    generator = torch.Generator().manual_seed(0)
    feats = torch.randn(2, frames, model.config.input_dim, generator=generator)
    return feats, torch.tensor([frames, frames - 13])


def export_torchscript(model: nn.Module, path: str | Path) -> Path:
    """Script the model (control flow kept, any batch and length) and save it atomically."""
    model = model.cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance mode; it still works
        scripted = torch.jit.script(InferenceModel(model))
        with atomic_path(path, suffix=".ts") as tmp:
            torch.jit.save(scripted, str(tmp))
    return Path(path)


def export_onnx(model: nn.Module, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """Export to ONNX with dynamic batch and time axes; the LSTMs become ONNX LSTM operators.

    Uses the TorchScript-based exporter (``dynamo=False``): ``torch.export`` cannot
    yet trace these LSTMs with a dynamic length (unbacked symbols in the LSTM
    decomposition, torch 2.11), while the TorchScript-based exporter maps them to
    ONNX's LSTM operator. The result is checked by :func:`verify`.
    """
    model = model.cpu().eval()
    feats, lengths = _example_inputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and an LSTM batch-size notice
        with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad():
            torch.onnx.export(
                InferenceModel(model),
                (feats, lengths),
                str(tmp),
                dynamo=False,
                external_data=False,
                opset_version=opset,
                input_names=["feats", "lengths"],
                output_names=["log_probs", "out_lengths"],
                dynamic_axes={
                    "feats": {0: "batch", 1: "time"},
                    "lengths": {0: "batch"},
                    "log_probs": {0: "batch", 1: "frames"},
                    "out_lengths": {0: "batch"},
                },
            )
    return Path(path)


# --- verification ------------------------------------------------------------


def _pad(feats_list: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in feats_list])
    batch = torch.zeros(len(feats_list), int(lengths.max()), feats_list[0].shape[1])
    for i, f in enumerate(feats_list):
        batch[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
    return batch, lengths


def _max_diff(
    reference: torch.Tensor, ref_lengths: torch.Tensor, other: np.ndarray | torch.Tensor, other_lengths, name: str
) -> float:
    other = torch.as_tensor(np.asarray(other))
    other_lengths = torch.as_tensor(np.asarray(other_lengths))
    if not torch.equal(other_lengths.long(), ref_lengths.long()):
        raise ExportError(
            f"{name}: output lengths {other_lengths.tolist()} differ from PyTorch's {ref_lengths.tolist()}"
        )
    worst = 0.0
    for i, n in enumerate(ref_lengths.tolist()):
        worst = max(worst, float((other[i, :n] - reference[i, :n]).abs().max()))
    return worst


def torchscript_runner(path: str | Path):
    """A function (feats, lengths) -> (log_probs, out_lengths) running a TorchScript export."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance mode; it still works
        scripted = torch.jit.load(str(path), map_location="cpu").eval()

    def run(feats, lengths):
        with torch.no_grad():
            return scripted(feats, lengths)

    return run


def onnx_runner(path: str | Path):
    """A function (feats, lengths) -> (log_probs, out_lengths) running an ONNX export in onnxruntime."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ExportError("checking the ONNX export needs onnxruntime (pip install -r requirements.txt)") from e
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feats, lengths: session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})


def verify(
    reference, feats_list: list[np.ndarray], backends: dict, atol: float = 1e-4, exact: tuple[str, ...] = ("bundle",)
) -> dict:
    """Compare other backends' log-probabilities with the PyTorch model's on normalized features of real audio.

    ``reference`` and every value of ``backends`` map (feats, lengths) to (log_probs, out_lengths)
    (a Recognizer's ``log_probs``, :func:`torchscript_runner`, :func:`onnx_runner`). The utterances go
    through as one padded batch and the first one alone (dynamic batch and time). Backends named in
    ``exact`` (the bundle: the same weights) must give identical outputs. Returns the largest absolute
    differences; raises ExportError beyond ``atol``.
    """
    if not feats_list:
        raise ExportError("no utterances to verify the exports on")
    runs = [_pad(feats_list), _pad(feats_list[:1])]
    references = [reference(feats, lengths) for feats, lengths in runs]
    report = {"utterances": len(feats_list), "frames": int(sum(len(f) for f in feats_list)), "atol": atol}
    for name, run in backends.items():
        diff = max(
            _max_diff(ref, ref_lengths, *run(feats, lengths), name)
            for (feats, lengths), (ref, ref_lengths) in zip(runs, references)
        )
        report[f"{name}_max_abs_diff"] = diff
        limit = 0.0 if name in exact else atol
        if not diff <= limit:
            raise ExportError(
                f"{name} export differs from the PyTorch model by {diff:.3g} (allowed {limit:g}) "
                f"on {len(feats_list)} utterances of real audio"
            )
        log.info(
            "%s matches PyTorch on %d utterances (%d frames): max |diff| %.3g",
            name,
            len(feats_list),
            report["frames"],
            diff,
        )
    return report


def verify_int8(reference, feats_list: list[np.ndarray], backends: dict, min_agreement: float = 0.9) -> dict:
    """How close int8 models come to the float model on normalized features of real audio.

    An int8 model does not give the float outputs (its weights are rounded), so instead of a
    tolerance on log-probabilities the check is on what decoding uses: the share of output frames
    whose best token is the float model's (``<name>_best_path_agreement``, at least
    ``min_agreement``), and the largest log-probability difference for the record.
    """
    feats, lengths = _pad(feats_list)
    ref, ref_lengths = reference(feats, lengths)
    report = {}
    for name, run in backends.items():
        log_probs, out_lengths = run(feats, lengths)
        log_probs = torch.as_tensor(np.asarray(log_probs))
        agree = total = 0
        for i, n in enumerate(ref_lengths.tolist()):
            agree += int((log_probs[i, :n].argmax(-1) == ref[i, :n].argmax(-1)).sum())
            total += n
        report[f"{name}_max_abs_diff"] = _max_diff(ref, ref_lengths, log_probs, out_lengths, name)
        report[f"{name}_best_path_agreement"] = agree / total
        log.info("%s: best token of %.2f%% of %d frames as the float model's", name, 100 * agree / total, total)
        if agree / total < min_agreement:
            raise ExportError(
                f"{name}: the best token of only {100 * agree / total:.1f}% of the frames is the float model's "
                f"(at least {100 * min_agreement:g}% expected): this model does not survive int8 quantization"
            )
    return report
