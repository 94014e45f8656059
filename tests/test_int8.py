"""int8 models (speechrecipe.model.quantize, asr-export --int8) on real FSDD audio with the tiny streaming
model: the int8 bundle and ONNX model are written and checked, asr-transcribe and the stream take them."""

import json

import pytest
import torch
from test_transcribe import fsdd_wav

from speechrecipe.audio import read_audio
from speechrecipe.cli import export, transcribe
from speechrecipe.model.files import BundleError, read_bundle
from speechrecipe.model.quantize import quantize_int8
from speechrecipe.recognizer import Recognizer
from speechrecipe.streaming import StreamingRecognizer
from speechrecipe.transcriber import Transcriber


@pytest.fixture(scope="module")
def exported(streaming_exp, fsdd_features, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    code = export.main([str(streaming_exp), str(out), "--audio", str(fsdd_features / "data/dev/wav.scp"), "--int8"])
    assert code == 0
    return out


def test_asr_export_int8_writes_checked_int8_models(exported):
    report = json.loads((exported / "verification.json").read_text())
    for name in ("int8_bundle", "int8_onnx"):
        assert report[f"{name}_best_path_agreement"] >= 0.9
        assert 0 < report[f"{name}_max_abs_diff"]  # int8 is not the float model: the check is on the best path
    manifest = json.loads((exported / "bundle-int8/manifest.json").read_text())
    assert manifest["quantization"] == "int8"
    assert manifest["config_hash"] != json.loads((exported / "bundle/manifest.json").read_text())["config_hash"]
    onnx_int8, onnx_float = (exported / "model.int8.onnx").stat().st_size, (exported / "model.onnx").stat().st_size
    assert onnx_int8 < 0.5 * onnx_float  # int8 weights: a quarter of the float ones, plus the graph

    recognizer = Recognizer.load(exported / "bundle-int8")
    assert recognizer.quantization == "int8"
    quantized = {type(m).__name__ for m in recognizer.model.modules() if ".quantized.dynamic." in type(m).__module__}
    plain = {type(m).__name__ for m in recognizer.model.modules() if type(m).__module__.startswith("torch.nn.")}
    assert {"LSTM", "Linear"} <= quantized and not {"LSTM", "Linear"} & plain

    manifest["quantization"] = "int4"
    (exported / "bundle-int8/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="int4"):
        read_bundle(exported / "bundle-int8")
    manifest["quantization"] = "int8"
    (exported / "bundle-int8/manifest.json").write_text(json.dumps(manifest))


def test_asr_transcribe_and_the_stream_take_the_int8_model(exported, streaming_exp, fsdd_recordings, capsys):
    files = [fsdd_wav(fsdd_recordings, d, "george", 5) for d in range(10)]
    int8 = Recognizer.load(exported / "bundle-int8")
    offline = Transcriber(int8, method="greedy")
    code = transcribe.main([str(exported / "bundle-int8"), *map(str, files), "--method", "greedy"])
    out = capsys.readouterr().out
    assert code == 0
    texts = {line.partition(" ")[0]: line.partition(" ")[2] for line in out.splitlines()}
    streamed = []
    for path in files:
        samples, rate = read_audio(str(path))
        assert texts[path.stem] == offline.decode_text(samples, rate)
        # The stream of the int8 model. Dynamic quantization scales each call's activations by their own
        # range, so chunks are not exactly one pass (unlike the float model): the text is, nearly always.
        stream = StreamingRecognizer(int8, rate)
        for start in range(0, len(samples), 1600):
            stream.accept_waveform(samples[start : start + 1600])
        streamed.append(stream.final_result().text == texts[path.stem])
    assert sum(streamed) >= 8
    # Mostly the float model's text.
    float_texts = [
        Transcriber(Recognizer.load(streaming_exp), method="greedy").decode_text(*read_audio(str(f))) for f in files
    ]
    assert sum(a == b for a, b in zip(float_texts, [texts[f.stem] for f in files])) >= 7
    # --int8 quantizes a float model when it is loaded: the int8 bundle's text, which is the same function of
    # the same float weights.
    code = transcribe.main([str(streaming_exp), *map(str, files), "--method", "greedy", "--int8"])
    assert code == 0 and capsys.readouterr().out == out


def test_quantize_int8_keeps_the_model_and_its_step():
    from speechrecipe.config import ModelConfig
    from speechrecipe.model.network import CTCModel

    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=20, vocab_size=12, hidden=32, layers=2, bidirectional=False)).eval()
    quantized = quantize_int8(model)
    assert quantized is not model and quantized.streamable
    feats = torch.randn(1, 30, 20)
    with torch.no_grad():
        whole, _ = quantized(feats, torch.tensor([30]))
        first, state = quantized.step(feats[:, :12])
        second, _ = quantized.step(feats[:, 12:], state)
    # Activations are quantized with each call's own range: close to one pass, not equal to it.
    streamed = torch.cat([first, second], dim=1)
    torch.testing.assert_close(streamed, whole, atol=0.05, rtol=0)
    assert (streamed.argmax(-1) == whole.argmax(-1)).float().mean() >= 0.9
