"""Exports of a trained acoustic model: TorchScript, ONNX, and a self-contained model bundle.

TorchScript (``model.ts``) and ONNX (``model.onnx``) hold the network alone:

    inputs   feats    float32 (batch, time, dim)  features already normalized with the model's CMVN
             lengths  int64   (batch,)            real frames per utterance
    outputs  log_probs    float32 (batch, frames, vocab)  CTC log-probabilities, blank = 0
             out_lengths  int64   (batch,)                real output frames per utterance

Batch and time are dynamic. Frames past an utterance's ``out_lengths`` are padding
(the exported graph keeps every subsampled frame of the padded batch; the PyTorch
model trims to the longest utterance), and the real frames are exactly those of
the utterance decoded alone.

A bundle is a directory that :func:`read_bundle` (and ``asr-transcribe``) loads
in place of an experiment; nothing in it is executable::

    manifest.json     format, version, config hash, model and feature config, CMVN mode,
                      and the size and sha256 of every other file
    model.pt          the weights: a state dict of tensors, loaded with torch.load(weights_only=True)
    tokenizer.model   the SentencePiece model (id 0 = <blank>)
    tokens.txt        its units, '<piece> <id>' per line
    cmvn.json         CMVN mode and the training set's global statistics (Kaldi's 2 x (dim+1) layout)

:func:`verify` checks that the exports and the bundle give the PyTorch model's
outputs on real audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .fileio import atomic_open, atomic_path

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "speechrecipe-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILES = ("model.pt", "tokenizer.model", "tokens.txt", "cmvn.json")
ONNX_OPSET = 17


class ExportError(RuntimeError):
    """An export could not be written, or does not give the PyTorch model's outputs."""


class BundleError(ValueError):
    """A model bundle is incomplete, modified, or not made of plain data."""


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
                InferenceModel(model), (feats, lengths), str(tmp), dynamo=False, external_data=False,
                opset_version=opset, input_names=["feats", "lengths"], output_names=["log_probs", "out_lengths"],
                dynamic_axes={"feats": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                              "log_probs": {0: "batch", 1: "frames"}, "out_lengths": {0: "batch"}},
            )
    return Path(path)


# --- bundle ------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_config_hash(final: dict, pieces: list[str]) -> str:
    """The hash of everything that decides what the model computes from audio, besides its weights."""
    return checkpoint.config_hash({"model": final["model_config"], "features": final["feature_config"],
                                   "cmvn": final["cmvn"]["mode"], "tokenizer": pieces})


def write_bundle(final: dict, out_dir: str | Path, source: str | None = None) -> dict:
    """Write a ``final.pt``-shaped dict as a bundle directory; returns the manifest.

    Every file is written atomically and the manifest last, so a directory
    whose manifest is present and matches its files is complete.
    """
    from .tokens import Tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(bytes(final["tokenizer"]))
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in final["model"].items()}
    checkpoint.save({"model": state}, out_dir / "model.pt")
    with atomic_path(out_dir / "tokenizer.model") as tmp:
        tmp.write_bytes(tokenizer.model_bytes)
    with atomic_open(out_dir / "tokens.txt") as f:
        f.writelines(f"{piece} {i}\n" for i, piece in enumerate(tokenizer.pieces))
    stats = torch.as_tensor(final["cmvn"]["global_stats"], dtype=torch.float64)
    with atomic_open(out_dir / "cmvn.json") as f:
        json.dump({"mode": final["cmvn"]["mode"], "global_stats": stats.tolist()}, f)
        f.write("\n")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "config_hash": bundle_config_hash(final, tokenizer.pieces),
        "model_config": final["model_config"],
        "feature_config": final["feature_config"],
        "cmvn_mode": final["cmvn"]["mode"],
        "vocab_size": tokenizer.vocab_size,
        "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
        "averaged_epochs": list(final.get("averaged_epochs", [])),
        "source": source,
        "files": {name: {"bytes": (out_dir / name).stat().st_size, "sha256": _sha256(out_dir / name)}
                  for name in BUNDLE_FILES},
    }
    with atomic_open(out_dir / "manifest.json") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def read_manifest(bundle_dir: str | Path) -> dict:
    bundle_dir = Path(bundle_dir)
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: not a model bundle (no manifest.json)") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"{bundle_dir}/manifest.json: unreadable ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{bundle_dir}/manifest.json: not a {BUNDLE_FORMAT} manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{bundle_dir}: bundle version {manifest.get('version')}; this code reads version "
                          f"{BUNDLE_VERSION}")
    return manifest


def read_bundle(bundle_dir: str | Path) -> dict:
    """Load a bundle as a ``final.pt``-shaped dict, after checking every file against the manifest.

    The weights are loaded with ``weights_only=True``: a ``model.pt`` holding
    anything but tensors and plain containers (a crafted pickle, say) is refused
    before any of it runs.
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    files = manifest.get("files", {})
    for name in BUNDLE_FILES:
        path = bundle_dir / name
        if name not in files:
            raise BundleError(f"{bundle_dir}/manifest.json does not list {name}")
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        if _sha256(path) != files[name]["sha256"]:
            raise BundleError(f"{path}: does not match the sha256 in manifest.json (the bundle is corrupt or was "
                              "modified); export it again")
    try:
        weights = checkpoint.load(bundle_dir / "model.pt")
    except checkpoint.CheckpointError as e:
        raise BundleError(f"{bundle_dir / 'model.pt'}: refused, not plain weights (loaded with weights_only=True): "
                          f"{e}") from e
    state = weights.get("model") if isinstance(weights, dict) else None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise BundleError(f"{bundle_dir / 'model.pt'}: not a state dict of tensors")
    cmvn = json.loads((bundle_dir / "cmvn.json").read_text(encoding="utf-8"))
    final = {
        "model": state,
        "model_config": manifest["model_config"],
        "feature_config": manifest["feature_config"],
        "tokenizer": (bundle_dir / "tokenizer.model").read_bytes(),
        "cmvn": {"mode": cmvn["mode"], "global_stats": torch.tensor(cmvn["global_stats"], dtype=torch.float64)},
        "averaged_epochs": manifest.get("averaged_epochs", []),
    }
    from .tokens import Tokenizer

    pieces = Tokenizer(final["tokenizer"]).pieces
    if bundle_config_hash(final, pieces) != manifest.get("config_hash"):
        raise BundleError(f"{bundle_dir}: the config hash in manifest.json does not match its contents")
    return final


# --- verification ------------------------------------------------------------

def _pad(feats_list: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in feats_list])
    batch = torch.zeros(len(feats_list), int(lengths.max()), feats_list[0].shape[1])
    for i, f in enumerate(feats_list):
        batch[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
    return batch, lengths


def _max_diff(reference: torch.Tensor, ref_lengths: torch.Tensor, other: np.ndarray | torch.Tensor,
              other_lengths, name: str) -> float:
    other = torch.as_tensor(np.asarray(other))
    other_lengths = torch.as_tensor(np.asarray(other_lengths))
    if not torch.equal(other_lengths.long(), ref_lengths.long()):
        raise ExportError(f"{name}: output lengths {other_lengths.tolist()} differ from PyTorch's "
                          f"{ref_lengths.tolist()}")
    worst = 0.0
    for i, n in enumerate(ref_lengths.tolist()):
        worst = max(worst, float((other[i, :n] - reference[i, :n]).abs().max()))
    return worst


def verify(recognizer, feats_list: list[np.ndarray], torchscript: str | Path | None = None,
           onnx: str | Path | None = None, bundle: str | Path | None = None, atol: float = 1e-4) -> dict:
    """Compare the exports' log-probabilities with the PyTorch model's on normalized features of real audio.

    The utterances go through as one padded batch and the first one alone
    (dynamic batch and time). The bundle must give identical outputs. Returns
    the largest absolute differences; raises ExportError beyond ``atol``.
    """
    if not feats_list:
        raise ExportError("no utterances to verify the exports on")
    runs = [_pad(feats_list), _pad(feats_list[:1])]
    references = [recognizer.log_probs(feats, lengths) for feats, lengths in runs]
    report = {"utterances": len(feats_list), "frames": int(sum(len(f) for f in feats_list)), "atol": atol}
    backends = {}
    if torchscript is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance mode; it still works
            scripted = torch.jit.load(str(torchscript), map_location="cpu").eval()

        def run_torchscript(feats, lengths):
            with torch.no_grad():
                return scripted(feats, lengths)
        backends["torchscript"] = run_torchscript
    if onnx is not None:
        try:
            import onnxruntime
        except ImportError as e:
            raise ExportError("checking the ONNX export needs onnxruntime (pip install -r requirements.txt)") from e
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        backends["onnx"] = lambda feats, lengths: session.run(None, {"feats": feats.numpy(),
                                                                     "lengths": lengths.numpy()})
    if bundle is not None:
        from .decoding import Recognizer

        bundled = Recognizer.from_bundle(bundle)
        backends["bundle"] = bundled.log_probs
    for name, run in backends.items():
        diff = max(_max_diff(ref, ref_lengths, *run(feats, lengths), name)
                   for (feats, lengths), (ref, ref_lengths) in zip(runs, references))
        report[f"{name}_max_abs_diff"] = diff
        limit = 0.0 if name == "bundle" else atol
        if not diff <= limit:
            raise ExportError(f"{name} export differs from the PyTorch model by {diff:.3g} (allowed {limit:g}) "
                              f"on {len(feats_list)} utterances of real audio")
        log.info("%s matches PyTorch on %d utterances (%d frames): max |diff| %.3g", name, len(feats_list),
                 report["frames"], diff)
    return report


# --- command line --------------------------------------------------------------

def main(argv=None) -> int:
    """``asr-export MODEL OUT_DIR --audio AUDIO...``: TorchScript, ONNX, bundle, checked on real audio."""
    import argparse

    from .audio import AudioError
    from .cli import setup_logging
    from .transcribe import Transcriber, collect_inputs, load_recognizer

    parser = argparse.ArgumentParser(
        prog="asr-export", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a trained model as TorchScript (OUT_DIR/model.ts), ONNX (OUT_DIR/model.onnx) and a "
                    "self-contained bundle (OUT_DIR/bundle/), and check on real audio that all of them give the "
                    "PyTorch model's outputs (OUT_DIR/verification.json).",
        epilog="example:\n  asr-export exp/fsdd_blstm exp/fsdd_blstm/export --audio data/fsdd/dev/wav.scp")
    parser.add_argument("model", help="experiment directory (exp/<tag>), its am/final.pt, or a bundle")
    parser.add_argument("out_dir")
    parser.add_argument("--audio", nargs="+", required=True,
                        help="audio to check the exports on: files, directories or wav.scp")
    parser.add_argument("--max-utts", type=int, default=8, help="check on at most this many utterances")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed log-probability difference")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    written: list[Path] = []  # removed again if a later step fails
    try:
        recognizer, final = load_recognizer(args.model, with_checkpoint=True)
        transcriber = Transcriber(recognizer, method="greedy")  # for its features only
        feats_list = []
        for source in collect_inputs(args.audio)[: args.max_utts]:
            feats_list.append(transcriber.features(*source.read()))
        (out / "verification.json").unlink(missing_ok=True)  # written last, when everything has been checked
        outputs = {"torchscript": export_torchscript(recognizer.model, out / "model.ts")}
        written.append(outputs["torchscript"])
        log.info("wrote %s", outputs["torchscript"])
        if not args.no_onnx:
            outputs["onnx"] = export_onnx(recognizer.model, out / "model.onnx")
            written.append(outputs["onnx"])
            log.info("wrote %s", outputs["onnx"])
        written.append(out / "bundle" / "manifest.json")
        manifest = write_bundle(final, out / "bundle", source=str(args.model))
        log.info("wrote %s/ (config hash %s)", out / "bundle", manifest["config_hash"])
        report = verify(recognizer, feats_list, outputs["torchscript"], outputs.get("onnx"), out / "bundle",
                        args.atol)
    except Exception as e:  # noqa: BLE001 - every failure ends the same way
        expected = (ExportError, BundleError, AudioError, checkpoint.CheckpointError, FileNotFoundError, ValueError)
        if not isinstance(e, expected):
            log.exception("export failed")  # a bug, not bad input: keep the traceback in the log
        for path in written:  # an export that failed its check must not look finished (the manifest marks a bundle)
            path.unlink(missing_ok=True)
        print(f"asr-export: error: {e}", file=sys.stderr)
        return 1
    report["config_hash"] = manifest["config_hash"]
    with atomic_open(out / "verification.json") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report))
    return 0
