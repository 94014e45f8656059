"""int8 models: dynamic quantization of the LSTM and linear layers.

Dynamic quantization stores the weights of ``nn.LSTM`` and ``nn.Linear`` as int8 (one scale per
tensor) and quantizes their inputs on the fly; everything else stays float. It needs no
calibration data, and on CPUs it makes the matrix products cheaper. Two forms:

- PyTorch (:func:`quantize_int8`): applied when a model is loaded (``asr-transcribe --int8``,
  ``asr-serve --int8``, or a bundle exported with ``asr-export --int8``, whose manifest says
  ``"quantization": "int8"``). It is a deterministic function of the float weights, so a bundle
  keeps them as plain tensors (still loaded with ``weights_only=True``) and is quantized in the
  same way everywhere. Streaming (:meth:`CTCModel.step`) works on it, but not exactly as one pass:
  each call quantizes its activations with their own range, so a chunk's outputs differ from one
  pass's by about 1e-3 (the float model's differ by BLAS rounding only).
- ONNX (:func:`quantize_onnx_int8`): onnxruntime's dynamic quantization of the float ONNX export
  (``model.int8.onnx``), since a dynamically quantized PyTorch LSTM cannot be exported to ONNX
  (pytorch #35536).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_path

QUANTIZATIONS = ("int8",)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode, CPU) with dynamically int8-quantized LSTM and linear layers."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (pytorch/ao #2259) but still does this in 2.11.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def quantize_onnx_int8(float_onnx: str | Path, out: str | Path) -> Path:
    """onnxruntime's dynamic int8 quantization (weights int8, activations uint8 on the fly) of an ONNX export."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime warns on the root logger that it could not type the lengths' int64 tensors (which it
    # leaves float anyway) and suggests a pre-processing step that dynamic quantization does not need.
    logging.disable(logging.WARNING)
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
            quantize_dynamic(str(float_onnx), str(tmp), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return Path(out)
