"""A trained model on disk: the ``final.pt`` and bundle formats, and finding a model from a path.

``final.pt`` (written by the training loop, :mod:`speechrecipe.trainer`) is a self-contained
model: a dict of plain data, loaded with ``weights_only=True``::

    kind             'ctc' (the acoustic model; files older than this key have none) or 'dae'
    model            the weights: the average of the best epochs (a state dict of tensors)
    model_config     the network's shape (speechrecipe.config.ModelConfig as a dict)
    averaged_epochs  which epochs were averaged
    history          one dict per epoch (what history.tsv holds)
    feature_config   the features it was trained on (speechrecipe.config.FeatureConfig as a dict)
    cmvn             {'mode': one of config.CMVN_MODES, 'global_stats': the training set's statistics}
    tokenizer        the SentencePiece model's bytes (acoustic models only)

A bundle is a directory that :func:`read_bundle` loads in place of an experiment; nothing in
it is executable::

    manifest.json     format, version, config hash, model and feature config, CMVN mode,
                      and the size and sha256 of every other file
    model.pt          the weights: a state dict of tensors, loaded with torch.load(weights_only=True)
    tokenizer.model   the SentencePiece model (id 0 = <blank>)
    tokens.txt        its units, '<piece> <id>' per line
    cmvn.json         CMVN mode and the training set's global statistics (Kaldi's 2 x (dim+1) layout)

An int8 bundle (``asr-export --int8``) is the same with ``"quantization": "int8"`` in its manifest:
its float weights are quantized when it is loaded (:mod:`speechrecipe.model.quantize`).

:func:`load_final` finds a model from whatever a user has: an experiment directory
(``exp/<tag>``), its ``am`` directory, a ``final.pt``, or a bundle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .. import checkpoint
from ..config import ModelConfig, config_hash
from ..fileio import atomic_open, atomic_path
from ..tokens import Tokenizer
from .quantize import QUANTIZATIONS

BUNDLE_FORMAT = "speechrecipe-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILES = ("model.pt", "tokenizer.model", "tokens.txt", "cmvn.json")


class BundleError(ValueError):
    """A model bundle is incomplete, modified, or not made of plain data."""


# --- final.pt ----------------------------------------------------------------------------------------------------


def save_final(
    path: str | Path,
    kind: str,
    state: dict,
    model_config: dict,
    averaged_epochs: list[int],
    history: list[dict],
    **extra,
) -> dict:
    """Write a ``final.pt`` atomically; returns what was written."""
    final = {
        "kind": kind,
        "model": state,
        "model_config": model_config,
        "averaged_epochs": averaged_epochs,
        "history": history,
        **extra,
    }
    checkpoint.save(final, path)
    return final


def load_final(path: str | Path) -> dict:
    """A trained model as a ``final.pt``-shaped dict, from an experiment directory (``exp/<tag>``),
    its ``am`` directory, a ``final.pt`` file or an exported bundle directory."""
    path = Path(path)
    if path.is_dir() and is_bundle(path):
        return read_bundle(path)
    candidates = [path / "am" / "final.pt", path / "final.pt"] if path.is_dir() else [path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"'{path}' is not an experiment directory (no am/final.pt), a final.pt or a model bundle (no manifest.json)"
        )
    return checkpoint.load(found)


def load_dae(path: str | Path):
    """A trained denoising autoencoder (eval mode) from its ``final.pt``."""
    from .dae import DenoisingAutoencoder

    final = checkpoint.load(path)
    if final.get("kind") != "dae":
        raise checkpoint.CheckpointError(f"{path} is not a denoising autoencoder's final.pt")
    config = ModelConfig.from_dict(final["model_config"])
    model = DenoisingAutoencoder(config, config.layers)
    model.load_state_dict(final["model"])
    return model.eval()


# --- bundles -----------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_config_hash(final: dict, pieces: list[str]) -> str:
    """The hash of everything that decides what the model computes from audio, besides its weights."""
    what = {
        "model": final["model_config"],
        "features": final["feature_config"],
        "cmvn": final["cmvn"]["mode"],
        "tokenizer": pieces,
    }
    if final.get("quantization"):  # only when set, so that float bundles keep the hashes they had
        what["quantization"] = final["quantization"]
    return config_hash(what)


def write_bundle(final: dict, out_dir: str | Path, source: str | None = None) -> dict:
    """Write a ``final.pt``-shaped dict as a bundle directory; returns the manifest.

    Every file is written atomically and the manifest last, so a directory
    whose manifest is present and matches its files is complete.
    """
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
        **({"quantization": final["quantization"]} if final.get("quantization") else {}),
        "vocab_size": tokenizer.vocab_size,
        "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
        "averaged_epochs": list(final.get("averaged_epochs", [])),
        "source": source,
        "files": {
            name: {"bytes": (out_dir / name).stat().st_size, "sha256": _sha256(out_dir / name)} for name in BUNDLE_FILES
        },
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
        raise BundleError(
            f"{bundle_dir}: bundle version {manifest.get('version')}; this code reads version {BUNDLE_VERSION}"
        )
    return manifest


def _check_files(bundle_dir: Path, files: dict) -> None:
    for name in BUNDLE_FILES:
        path = bundle_dir / name
        if name not in files:
            raise BundleError(f"{bundle_dir}/manifest.json does not list {name}")
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        if _sha256(path) != files[name]["sha256"]:
            raise BundleError(
                f"{path}: does not match the sha256 in manifest.json (the bundle is corrupt or was "
                "modified); export it again"
            )


def read_bundle(bundle_dir: str | Path) -> dict:
    """Load a bundle as a ``final.pt``-shaped dict, after checking every file against the manifest.

    The weights are loaded with ``weights_only=True``: a ``model.pt`` holding
    anything but tensors and plain containers (a crafted pickle, say) is refused
    before any of it runs.
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    _check_files(bundle_dir, manifest.get("files", {}))
    try:
        weights = checkpoint.load(bundle_dir / "model.pt")
    except checkpoint.CheckpointError as e:
        raise BundleError(
            f"{bundle_dir / 'model.pt'}: refused, not plain weights (loaded with weights_only=True): {e}"
        ) from e
    state = weights.get("model") if isinstance(weights, dict) else None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise BundleError(f"{bundle_dir / 'model.pt'}: not a state dict of tensors")
    cmvn = json.loads((bundle_dir / "cmvn.json").read_text(encoding="utf-8"))
    final = {
        "kind": "ctc",
        "model": state,
        "model_config": manifest["model_config"],
        "feature_config": manifest["feature_config"],
        "tokenizer": (bundle_dir / "tokenizer.model").read_bytes(),
        "cmvn": {"mode": cmvn["mode"], "global_stats": torch.tensor(cmvn["global_stats"], dtype=torch.float64)},
        "averaged_epochs": manifest.get("averaged_epochs", []),
    }
    if manifest.get("quantization") is not None:
        if manifest["quantization"] not in QUANTIZATIONS:
            raise BundleError(
                f"{bundle_dir}/manifest.json: quantization '{manifest['quantization']}' is unknown "
                f"(this code knows {', '.join(QUANTIZATIONS)})"
            )
        final["quantization"] = manifest["quantization"]
    pieces = Tokenizer(final["tokenizer"]).pieces
    if bundle_config_hash(final, pieces) != manifest.get("config_hash"):
        raise BundleError(f"{bundle_dir}: the config hash in manifest.json does not match its contents")
    return final
