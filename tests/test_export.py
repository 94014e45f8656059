"""TorchScript and ONNX exports and the model bundle: same outputs as PyTorch on real audio, safe to load."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_transcribe import hyp_lines, train_tiny_model

from conftest import snakemake_on
from speechrecipe import checkpoint
from speechrecipe.cli import export as asr_export
from speechrecipe.cli import transcribe as asr_transcribe
from speechrecipe.config import ModelConfig
from speechrecipe.inputs import Source
from speechrecipe.model import CTCModel, files
from speechrecipe.model import export as model_export
from speechrecipe.recognizer import Recognizer
from speechrecipe.transcriber import Transcriber

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.fixture(scope="module")
def exp(fsdd_features, tmp_path_factory):
    return train_tiny_model(fsdd_features, tmp_path_factory.mktemp("exp"))


@pytest.fixture(scope="module")
def exported(exp, fsdd_features):
    """asr-export's work (its main in this process), on the dev set's real audio."""
    code = asr_export.main([str(exp), str(exp / "export"), "--audio", str(fsdd_features / "data/dev/wav.scp")])
    assert code == 0
    return exp / "export"


@pytest.fixture(scope="module")
def real_feats(exp, fsdd_recordings):
    """Normalized features of real recordings of different lengths (speakers the model never heard)."""
    transcriber = Transcriber(Recognizer.load(exp), method="greedy")
    files = [fsdd_recordings / f"{d}_lucas_{t}.wav" for d, t in ((0, 1), (7, 2), (3, 3), (8, 4))]
    return [transcriber.features(*Source(f.stem, str(f)).read()) for f in files]


def padded(feats_list):
    lengths = torch.tensor([len(f) for f in feats_list])
    batch = torch.zeros(len(feats_list), int(lengths.max()), feats_list[0].shape[1])
    for i, f in enumerate(feats_list):
        batch[i, : len(f)] = torch.from_numpy(f)
    return batch, lengths


# --- exports match PyTorch ----------------------------------------------------------


def test_export_writes_everything_and_verifies_it_on_real_audio(exported):
    for name in (
        "model.ts",
        "model.onnx",
        "verification.json",
        *(f"bundle/{f}" for f in ("manifest.json", *files.BUNDLE_FILES)),
    ):
        assert (exported / name).stat().st_size > 0, name
    report = json.loads((exported / "verification.json").read_text())
    assert report["utterances"] == 8 and report["frames"] > 200
    assert report["torchscript_max_abs_diff"] <= 1e-4
    assert report["onnx_max_abs_diff"] <= 1e-4
    assert report["bundle_max_abs_diff"] == 0.0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_and_onnx_match_pytorch_for_any_batch_and_length(exp, exported, real_feats):
    import onnxruntime

    recognizer = Recognizer.load(exp)
    scripted = torch.jit.load(str(exported / "model.ts"))
    session = onnxruntime.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    for group in (real_feats, real_feats[1:3], real_feats[3:]):  # batch 4, 2 and 1; other lengths than at export
        feats, lengths = padded(group)
        reference, ref_lengths = recognizer.log_probs(feats, lengths)
        with torch.no_grad():
            ts_out, ts_lengths = scripted(feats, lengths)
        onnx_out, onnx_lengths = session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})
        assert ts_lengths.tolist() == ref_lengths.tolist() == onnx_lengths.tolist()
        for i, n in enumerate(ref_lengths.tolist()):
            torch.testing.assert_close(ts_out[i, :n], reference[i, :n], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(torch.from_numpy(onnx_out[i, :n]), reference[i, :n], rtol=1e-4, atol=1e-4)
            # and the same best path
            assert torch.equal(torch.from_numpy(onnx_out[i, :n]).argmax(-1), reference[i, :n].argmax(-1))


@pytest.mark.parametrize(
    "subsampling,factor,bidirectional",
    [("stack", 3, True), ("conv2d", 4, True), ("conv2d", 2, False), ("none", 1, False)],
)
def test_every_architecture_exports_with_dynamic_axes(subsampling, factor, bidirectional, exp, real_feats, tmp_path):
    final = checkpoint.load(exp / "am/final.pt")
    vocab = final["model_config"]["vocab_size"]
    shape = {"subsampling": subsampling, "subsampling_factor": factor, "bidirectional": bidirectional}
    config = ModelConfig(input_dim=40, vocab_size=vocab, hidden=24, layers=2, **shape)
    torch.manual_seed(1)
    final.update(model=CTCModel(config).state_dict(), model_config=config.to_dict())
    recognizer = Recognizer(final)
    ts = model_export.export_torchscript(recognizer.model, tmp_path / "model.ts")
    onnx = model_export.export_onnx(recognizer.model, tmp_path / "model.onnx")
    backends = {"torchscript": model_export.torchscript_runner(ts), "onnx": model_export.onnx_runner(onnx)}
    report = model_export.verify(recognizer.log_probs, real_feats, backends)
    assert report["torchscript_max_abs_diff"] <= 1e-4 and report["onnx_max_abs_diff"] <= 1e-4


def test_verification_fails_when_an_export_differs(exp, exported, real_feats, tmp_path):
    recognizer = Recognizer.load(exp)
    with torch.no_grad():
        recognizer.model.output.bias[1] += 0.5  # the PyTorch model changed after export
    with pytest.raises(model_export.ExportError, match="torchscript export differs"):
        backends = {"torchscript": model_export.torchscript_runner(exported / "model.ts")}
        model_export.verify(recognizer.log_probs, real_feats, backends)


# --- bundle -------------------------------------------------------------------


def test_the_bundle_is_plain_data_with_a_manifest(exp, exported):
    bundle = exported / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    final = checkpoint.load(exp / "am/final.pt")
    assert manifest["format"] == "speechrecipe-bundle" and manifest["version"] == 1
    assert manifest["model_config"] == final["model_config"]
    assert manifest["feature_config"] == final["feature_config"] and manifest["cmvn_mode"] == "global"
    assert len(manifest["config_hash"]) == 12 and set(manifest["files"]) == set(files.BUNDLE_FILES)
    weights = torch.load(bundle / "model.pt", weights_only=True)
    assert set(weights["model"]) == set(final["model"])
    for name, tensor in final["model"].items():
        assert torch.equal(weights["model"][name], tensor), name
    stats = json.loads((bundle / "cmvn.json").read_text())["global_stats"]
    np.testing.assert_array_equal(np.array(stats), final["cmvn"]["global_stats"].numpy())
    assert (bundle / "tokens.txt").read_text().splitlines()[0] == "<blank> 0"


def test_asr_transcribe_takes_the_bundle_in_place_of_the_experiment(exp, exported, fsdd_features, tmp_path, capsys):
    wav_scp = fsdd_features / "data/dev/wav.scp"
    assert asr_transcribe.main([str(exp), str(wav_scp), "--ctm", str(tmp_path / "a.ctm")]) == 0
    from_exp = capsys.readouterr().out
    assert asr_transcribe.main([str(exported / "bundle"), str(wav_scp), "--ctm", str(tmp_path / "b.ctm")]) == 0
    from_bundle = capsys.readouterr().out
    assert len(hyp_lines(from_bundle)) == 20 and from_bundle == from_exp
    assert (tmp_path / "a.ctm").read_text() == (tmp_path / "b.ctm").read_text()


def copy_bundle(bundle: Path, to: Path) -> Path:
    to.mkdir()
    for f in bundle.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


class Payload:
    """What a malicious model.pt would carry: unpickling it runs a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_pickle_in_a_bundle_is_refused(exported, tmp_path, capsys):
    bundle = copy_bundle(exported / "bundle", tmp_path / "bundle")
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(marker)}, bundle / "model.pt")
    # Even with a manifest that vouches for it, the weights are loaded with weights_only=True.
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.pt"]["sha256"] = hashlib.sha256((bundle / "model.pt").read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(files.BundleError, match="weights_only=True"):
        files.read_bundle(bundle)
    assert asr_transcribe.main([str(bundle), "x.wav"]) == 1
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_a_modified_bundle_is_refused(exported, tmp_path):
    bundle = copy_bundle(exported / "bundle", tmp_path / "bundle")
    cmvn = json.loads((bundle / "cmvn.json").read_text())
    cmvn["mode"] = "none"
    (bundle / "cmvn.json").write_text(json.dumps(cmvn))
    with pytest.raises(files.BundleError, match="cmvn.json: does not match the sha256"):
        Recognizer.load(bundle)
    (bundle / "tokens.txt").unlink()
    with pytest.raises(files.BundleError, match="missing"):
        files.read_bundle(bundle)


# --- the recipe rule ---------------------------------------------------------------


def test_export_is_a_rule_on_demand_and_not_part_of_all(tmp_path):
    from test_recipe import planned_rules

    if not SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed in this environment")
    base = [*snakemake_on(tmp_path), "-n", "--cores", "1"]
    on_demand = subprocess.run(
        [*base, "exp/synth_digits_blstm/export/bundle/manifest.json"], capture_output=True, text=True, check=False
    )
    assert on_demand.returncode == 0, on_demand.stderr
    assert {"export_model", "train_am", "prepare_data"} <= planned_rules(on_demand)
    everything = subprocess.run(base, capture_output=True, text=True, check=False)
    assert everything.returncode == 0, everything.stderr
    assert "export_model" not in planned_rules(everything) and "results" in planned_rules(everything)
