"""``asr-export MODEL OUT_DIR --audio AUDIO...``: TorchScript, ONNX and a bundle, checked on real audio.

Writes OUT_DIR/model.ts, OUT_DIR/model.onnx, OUT_DIR/bundle/ (:mod:`speechrecipe.model.files`)
and, once every export gives the PyTorch model's outputs on the audio, OUT_DIR/verification.json.
With ``--int8`` also the int8 models (:mod:`speechrecipe.model.quantize`): OUT_DIR/bundle-int8/
(quantized by PyTorch when loaded: asr-transcribe and asr-serve take it) and OUT_DIR/model.int8.onnx
(onnxruntime's quantization of the ONNX export), checked for the float model's best path.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from ..audio import AudioError
from ..checkpoint import CheckpointError
from ..fileio import atomic_open
from ..inputs import collect_inputs
from ..model.export import (
    ExportError,
    export_onnx,
    export_torchscript,
    onnx_runner,
    torchscript_runner,
    verify,
    verify_int8,
)
from ..model.files import BundleError, write_bundle
from ..model.quantize import quantize_onnx_int8
from ..recognizer import Recognizer
from ..transcriber import Transcriber
from . import setup_logging

log = logging.getLogger("asr-export")

EXPECTED_ERRORS = (ExportError, BundleError, AudioError, CheckpointError, FileNotFoundError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a trained model as TorchScript (OUT_DIR/model.ts), ONNX (OUT_DIR/model.onnx) and a "
        "self-contained bundle (OUT_DIR/bundle/), and check on real audio that all of them give the "
        "PyTorch model's outputs (OUT_DIR/verification.json).",
        epilog="example:\n  asr-export exp/fsdd_blstm exp/fsdd_blstm/export --audio data/fsdd/dev/wav.scp",
    )
    parser.add_argument("model", help="experiment directory (exp/<tag>), its am/final.pt, or a bundle")
    parser.add_argument("out_dir")
    parser.add_argument(
        "--audio", nargs="+", required=True, help="audio to check the exports on: files, directories or wav.scp"
    )
    parser.add_argument("--max-utts", type=int, default=8, help="check on at most this many utterances")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed log-probability difference")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write int8 models (dynamic quantization of the LSTM and linear layers): OUT_DIR/bundle-int8/ "
        "and OUT_DIR/model.int8.onnx",
    )
    parser.add_argument(
        "--int8-min-agreement",
        type=float,
        default=0.9,
        help="fail when the int8 models' best token differs from the float model's on more frames "
        "(default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    return parser


def export(args: argparse.Namespace, written: list[Path]) -> dict:
    """Write the exports and the bundle (each path into ``written`` as it appears), verify them all."""
    out = Path(args.out_dir)
    recognizer = Recognizer.load(args.model)
    transcriber = Transcriber(recognizer, method="greedy")  # for its features only
    feats_list = [transcriber.features(*source.read()) for source in collect_inputs(args.audio)[: args.max_utts]]
    (out / "verification.json").unlink(missing_ok=True)  # written last, when everything has been checked
    torchscript = export_torchscript(recognizer.model, out / "model.ts")
    written.append(torchscript)
    log.info("wrote %s", torchscript)
    backends = {"torchscript": torchscript_runner(torchscript)}
    if not args.no_onnx:
        onnx = export_onnx(recognizer.model, out / "model.onnx")
        written.append(onnx)
        log.info("wrote %s", onnx)
        backends["onnx"] = onnx_runner(onnx)
    written.append(out / "bundle" / "manifest.json")
    manifest = write_bundle(recognizer.final, out / "bundle", source=str(args.model))
    log.info("wrote %s/ (config hash %s)", out / "bundle", manifest["config_hash"])
    backends["bundle"] = Recognizer.load(out / "bundle").log_probs
    report = verify(recognizer.log_probs, feats_list, backends, args.atol)
    if args.int8:
        report.update(export_int8(args, recognizer, feats_list, written))
    return {**report, "config_hash": manifest["config_hash"]}


def export_int8(args: argparse.Namespace, recognizer: Recognizer, feats_list, written: list[Path]) -> dict:
    """The int8 bundle and ONNX model, checked against the float model's best path."""
    out = Path(args.out_dir)
    written.append(out / "bundle-int8" / "manifest.json")
    manifest = write_bundle({**recognizer.final, "quantization": "int8"}, out / "bundle-int8", source=str(args.model))
    log.info("wrote %s/ (int8, config hash %s)", out / "bundle-int8", manifest["config_hash"])
    backends = {"int8_bundle": Recognizer.load(out / "bundle-int8").log_probs}
    if not args.no_onnx:
        onnx = quantize_onnx_int8(out / "model.onnx", out / "model.int8.onnx")
        written.append(onnx)
        log.info("wrote %s", onnx)
        backends["int8_onnx"] = onnx_runner(onnx)
    return verify_int8(recognizer.log_probs, feats_list, backends, args.int8_min_agreement)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    written: list[Path] = []  # removed again if a later step fails
    try:
        report = export(args, written)
    except Exception as e:  # every failure ends the same way
        if not isinstance(e, EXPECTED_ERRORS):
            log.exception("export failed")  # a bug, not bad input: keep the traceback in the log
        for path in written:  # an export that failed its check must not look finished (the manifest marks a bundle)
            path.unlink(missing_ok=True)
        print(f"asr-export: error: {e}", file=sys.stderr)
        return 1
    with atomic_open(Path(args.out_dir) / "verification.json") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
