"""asr-transcribe on real FSDD audio with a model trained here: same text as the recipe, any format, bad files, CTM."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from conftest import ROOT, train_am_on
from speechrecipe import checkpoint
from speechrecipe.audio import read_audio, resample
from speechrecipe.cli import transcribe
from speechrecipe.cmvn import normalize
from speechrecipe.config import CMVN_MODES, FeatureConfig
from speechrecipe.dataset import FeatureSet
from speechrecipe.decoding import BeamSearch
from speechrecipe.features import compute, compute_entry, compute_in_blocks
from speechrecipe.fileio import read_table
from speechrecipe.inputs import Source
from speechrecipe.recognizer import Recognizer
from speechrecipe.scoring import edit_distance
from speechrecipe.transcriber import Transcriber

ASR_TRANSCRIBE = Path(sys.executable).with_name("asr-transcribe")
FEATURES = {"type": "fbank", "num_mel_bins": 40, "sample_rate": 8000}  # conftest's fsdd_features
MODEL = {"hidden": 64, "layers": 2, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.1}
# Enough to recognize most training-speaker digits (a handful of seconds on one core).
TRAIN = {
    "max_epochs": 40,
    "batch_frames": 1000,
    "lr": 0.005,
    "warmup_steps": 20,
    "average_best": 1,
    "select_by": "ter",
    "seed": 3,
    "specaug": {"freq_masks": 0, "time_masks": 0},
}


def train_tiny_model(fsdd_features, exp_dir: Path, cmvn: str = "global", model: dict = MODEL) -> Path:
    """exp_dir/am/final.pt trained by the recipe's own script on conftest's FSDD features."""
    command = train_am_on(fsdd_features, exp_dir / "am", model, TRAIN, cmvn)
    subprocess.run(
        [*command, "--features", json.dumps(FEATURES), "--threads", "1", "--no-progress"],
        check=True,
        capture_output=True,
    )
    return exp_dir


@pytest.fixture(scope="module")
def exp(fsdd_features, tmp_path_factory):
    return train_tiny_model(fsdd_features, tmp_path_factory.mktemp("exp"))


@pytest.fixture(scope="module")
def transcriber(exp):
    return Transcriber(Recognizer.load(exp))


def run_cli(*args) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    if not ASR_TRANSCRIBE.exists():
        pytest.skip(f"{ASR_TRANSCRIBE} is not installed (pip install --no-deps -e .)")
    return subprocess.run([str(ASR_TRANSCRIBE), *map(str, args)], capture_output=True, text=True, check=False)


def run_main(capsys, *args) -> tuple[int, str, str]:
    """transcribe.main in this process (no interpreter start-up): exit status, stdout, stderr."""
    code = transcribe.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def hyp_lines(text: str) -> dict[str, str]:
    return {line.partition(" ")[0]: line.partition(" ")[2] for line in text.splitlines()}


def fsdd_wav(fsdd_recordings, digit, speaker="jackson", take=5) -> Path:
    return fsdd_recordings / f"{digit}_{speaker}_{take}.wav"


def concatenate(files, gap_seconds=0.1) -> tuple[np.ndarray, int]:
    pieces = []
    for f in files:
        samples, rate = read_audio(str(f))
        pieces += [samples, np.zeros(int(gap_seconds * rate), np.float32)]
    return np.concatenate(pieces), rate


# --- same text as the recipe ----------------------------------------------------------


@pytest.fixture(scope="module")
def exp_of_cmvn(exp, fsdd_features, tmp_path_factory):
    """A tiny model trained by the recipe with each CMVN mode (global is ``exp``), made when first asked for."""
    made = {"global": exp}

    def get(mode: str) -> Path:
        if mode not in made:
            made[mode] = train_tiny_model(fsdd_features, tmp_path_factory.mktemp(f"exp_{mode}"), cmvn=mode)
        return made[mode]

    return get


def decode_stage(exp: Path, feat_dir: Path, hyp: Path, config: str) -> dict[str, str]:
    """The recipe's decode stage (workflow/scripts/decode.py) on a feature directory: utt -> text."""
    command = [sys.executable, str(ROOT / "workflow/scripts/decode.py"), str(exp / "am/final.pt"), str(feat_dir)]
    subprocess.run([*command, str(hyp), "--config", config], check=True, capture_output=True)
    return read_table(hyp)


@pytest.mark.parametrize("subset", ["train", "dev"])
def test_same_text_as_the_recipe_decoding_stage(exp, fsdd_features, tmp_path, subset):
    assert_same_text_as_decode_stage(exp, fsdd_features, tmp_path, subset)


@pytest.mark.parametrize("mode", [m for m in CMVN_MODES if m != "global"])
def test_every_normalization_gives_the_decode_stages_text(exp_of_cmvn, fsdd_features, tmp_path, mode):
    """Given the data directory's wav.scp (utt2spk beside it), asr-transcribe normalizes as the decode stage did,
    speaker CMVN included."""
    exp = exp_of_cmvn(mode)
    assert checkpoint.load(exp / "am/final.pt")["cmvn"]["mode"] == mode
    # A tiny model on unnormalized features still says nothing, so the text alone would prove little there:
    # the features the network gets are compared as well (speaker CMVN's need the speaker's other files).
    assert_same_text_as_decode_stage(exp, fsdd_features, tmp_path, "train", must_speak=mode != "none")
    if mode != "speaker":
        assert_same_features_as_decode_stage(exp, fsdd_features, "train")


def assert_same_features_as_decode_stage(exp, fsdd_features, subset, count=5):
    """asr-transcribe's normalized features of a file are the decode stage's, to float32 rounding."""
    recognizer = Recognizer.load(exp)
    transcriber = Transcriber(recognizer)
    data = FeatureSet(fsdd_features / "fbank" / subset, recognizer.cmvn_mode, None, recognizer.global_mean_std)
    wavs = read_table(fsdd_features / "data" / subset / "wav.scp")
    for i in range(count):
        utterance = data[i]
        samples, rate = read_audio(wavs[utterance.utt])
        np.testing.assert_allclose(transcriber.features(samples, rate), utterance.feats, rtol=1e-4, atol=1e-4)


def assert_same_text_as_decode_stage(exp, fsdd_features, tmp_path, subset, must_speak=True):
    recipe = decode_stage(
        exp, fsdd_features / "fbank" / subset, tmp_path / "hyp.txt", '{"method": "beam", "beam_size": 10}'
    )

    result = run_cli(exp, fsdd_features / "data" / subset / "wav.scp")
    assert result.returncode == 0, result.stderr
    transcribed = hyp_lines(result.stdout)
    assert transcribed == recipe
    if subset == "train" and must_speak:  # the comparison means something only if the model says something
        assert sum(bool(text) for text in recipe.values()) >= 0.8 * len(recipe)


def test_flac_at_another_rate_in_stereo_is_read_and_resampled_like_the_recipe(
    exp, transcriber, fsdd_recordings, tmp_path, capsys
):
    config = FeatureConfig.from_dict(FEATURES)
    recognizer = transcriber.recognizer
    search = BeamSearch(recognizer.tokenizer.pieces, 10)
    expected = {}
    for digit in (1, 3, 6, 9):
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit)))
        upsampled = resample(samples, rate, 22050)
        path = tmp_path / f"digit{digit}.flac"
        soundfile.write(path, np.stack([upsampled, upsampled], axis=1), 22050, format="FLAC", subtype="PCM_16")
        assert soundfile.info(str(path)).format == "FLAC" and soundfile.info(str(path)).samplerate == 22050
        # What the recipe's feature and decoding stages do with a wav.scp entry.
        feats = normalize(compute_entry(str(path), config), "global", None, recognizer.global_mean_std)
        ids = recognizer.decode_ids(torch.from_numpy(feats)[None], torch.tensor([len(feats)]), search)[0]
        expected[f"digit{digit}"] = recognizer.tokenizer.decode(ids)
    code, out, err = run_main(capsys, exp, *sorted(tmp_path.glob("*.flac")))
    assert code == 0, err
    assert hyp_lines(out) == expected


def test_features_in_blocks_are_the_features_of_one_pass(fsdd_recordings):
    samples, rate = concatenate([fsdd_wav(fsdd_recordings, d) for d in range(10)])
    for config in (FeatureConfig.from_dict(FEATURES), FeatureConfig(type="mfcc", num_mel_bins=23, sample_rate=8000)):
        blocks = compute_in_blocks(samples, config, block_frames=97)
        np.testing.assert_array_equal(blocks, compute(samples, rate, config))


# --- inputs -------------------------------------------------------------------


def test_a_directory_is_every_audio_file_under_it(exp, fsdd_recordings, tmp_path, capsys):
    folder = tmp_path / "recordings"
    (folder / "more").mkdir(parents=True)
    for digit, where in ((2, folder), (5, folder), (7, folder / "more")):
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit)))
        soundfile.write(where / f"{digit}_jackson_5.wav", samples, rate)
    (folder / "README.txt").write_text("not audio\n")
    code, out, err = run_main(capsys, exp, folder)
    assert code == 0, err
    assert list(hyp_lines(out)) == ["2_jackson_5", "5_jackson_5", "more-7_jackson_5"]


def test_a_wav_scp_with_files_and_a_pipe(exp, transcriber, fsdd_recordings, tmp_path, capsys):
    a, b = fsdd_wav(fsdd_recordings, 4), fsdd_wav(fsdd_recordings, 8)
    (tmp_path / "wav.scp").write_text(f"utt-a {a}\nutt-b cat {b} |\n")
    code, out, err = run_main(capsys, exp, tmp_path / "wav.scp")
    assert code == 0, err
    assert hyp_lines(out) == {
        "utt-a": transcriber.transcribe(Source("a", str(a))).text,
        "utt-b": transcriber.transcribe(Source("b", str(b))).text,
    }


def test_bad_files_are_named_and_the_good_ones_still_transcribed(exp, fsdd_recordings, tmp_path):
    good = [fsdd_wav(fsdd_recordings, 0), fsdd_wav(fsdd_recordings, 2)]
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00this is not audio" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "zero_length.wav", np.zeros(0, np.float32), 8000)
    soundfile.write(tmp_path / "ten_ms.wav", np.zeros(80, np.float32), 8000)
    bad = ["garbage", "empty", "zero_length", "ten_ms", "missing"]
    result = run_cli(exp, good[0], *[tmp_path / f"{name}.wav" for name in bad], good[1])
    assert result.returncode == 1
    assert list(hyp_lines(result.stdout)) == ["0_jackson_5", "2_jackson_5"]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == len(bad)
    for name, line in zip(bad, errors):
        assert f"{name}.wav" in line, line
    assert "no samples" in errors[2] and "too short" in errors[3] and "no such file" in errors[4]
    assert "5 failed: garbage empty zero_length ten_ms missing" in result.stderr


def test_a_model_that_is_not_there_is_one_clear_error(tmp_path, capsys):
    code, out, err = run_main(capsys, tmp_path, "x.wav")
    assert code == 1 and out == ""
    assert "not an experiment directory (no am/final.pt)" in err and "Traceback" not in err


# --- timings, speed, long audio ------------------------------------------------------


def read_ctm(text: str) -> list[tuple[str, float, float, str]]:
    rows = []
    for line in text.splitlines():
        fields = line.split()
        assert len(fields) == 5 and fields[1] == "1", line
        assert re.fullmatch(r"\d+\.\d\d", fields[2]) and re.fullmatch(r"\d+\.\d\d", fields[3]), line
        rows.append((fields[0], float(fields[2]), float(fields[3]), fields[4]))
    return rows


def check_ctm(rows, durations: dict[str, float], texts: dict[str, str]):
    for utt, duration in durations.items():
        words = [(start, dur, word) for u, start, dur, word in rows if u == utt]
        assert " ".join(w for _, _, w in words) == " ".join(texts[utt].split())
        previous_end = 0.0
        for start, dur, _ in words:
            assert dur >= 0 and start >= previous_end - 0.011, words  # in order (rounding to 10 ms aside)
            assert start + dur <= duration + 0.011, (words, duration)  # inside the audio
            previous_end = start + dur


def test_timings_are_a_ctm_inside_the_audio_and_in_order(exp, fsdd_recordings, tmp_path, capsys):
    samples, rate = concatenate([fsdd_wav(fsdd_recordings, d, "george", 6) for d in (3, 1, 4, 1, 5)], 0.3)
    soundfile.write(tmp_path / "connected.wav", samples, rate)
    files = [fsdd_wav(fsdd_recordings, d) for d in (6, 9)] + [tmp_path / "connected.wav"]
    durations = {Path(f).stem: soundfile.info(str(f)).duration for f in files}

    code, out, err = run_main(capsys, exp, *files, "--ctm", tmp_path / "out.ctm")
    assert code == 0, err
    texts = hyp_lines(out)
    rows = read_ctm((tmp_path / "out.ctm").read_text())
    assert {u for u, *_ in rows} <= set(durations) and len(rows) >= 3
    check_ctm(rows, durations, texts)

    code, out, err = run_main(capsys, exp, "--timings", *files)  # the CTM instead of the text
    assert code == 0 and read_ctm(out) == rows


def test_the_real_time_factor_is_reported_on_stderr(exp, fsdd_recordings):
    result = run_cli(exp, *[fsdd_wav(fsdd_recordings, d) for d in range(10)])
    assert result.returncode == 0, result.stderr
    match = re.search(r"10 file\(s\), ([\d.]+) s of audio in ([\d.]+) s: real-time factor ([\d.]+)", result.stderr)
    assert match, result.stderr
    audio_seconds, seconds, rtf = map(float, match.groups())
    # The figure is consistent with the times it reports (speed itself is a benchmark, never a test).
    assert audio_seconds > 0 and abs(rtf - seconds / audio_seconds) < 0.01 + 0.01 * rtf
    assert "real-time factor" not in result.stdout


def test_chunked_decoding_is_exact_in_one_chunk_and_close_across_chunks(transcriber, fsdd_recordings, tmp_path):
    """A chunk sees its overlap (2 s) of context on each side, not the whole recording, so the bidirectional
    LSTM's far context is what differs: exactly one pass where a recording fits one chunk, close where not."""
    files = [fsdd_wav(fsdd_recordings, i % 10, ("george", "jackson")[i % 2], 5 + i // 10) for i in range(30)]
    samples, rate = concatenate(files, 0.3)
    assert len(samples) / rate > 20
    whole = Transcriber(transcriber.recognizer, chunk_seconds=1000)
    chunked = Transcriber(transcriber.recognizer, chunk_seconds=6, overlap_seconds=2)
    feats = whole.features(samples, rate)
    # A recording shorter than a chunk: the same computation, bit for bit.
    short = feats[: int(5.5 * 100)]
    assert torch.equal(chunked.log_probs(short), whole.log_probs(short))
    # Longer: the kept central parts tile the recording, none twice, none missed ...
    windows = chunked.windows(len(feats))
    assert len(windows) >= 4
    assert [keep for _, _, keep, _ in windows[1:]] == [end for _, _, _, end in windows[:-1]]
    assert windows[0][2] == 0 and windows[-1][3] == len(feats)
    one_pass, chunks = whole.log_probs(feats), chunked.log_probs(feats)
    assert chunks.shape == one_pass.shape
    # ... and what differs is small: posteriors on average within a percent, the same best path nearly
    # everywhere, and the text within a few tokens of one pass (measured here: 0.1 % of frames, 1 token of 68).
    posterior_difference = (chunks.exp() - one_pass.exp()).abs().sum(-1).mean()
    assert float(posterior_difference) < 0.02
    assert float((chunks.argmax(-1) == one_pass.argmax(-1)).float().mean()) > 0.97
    text, chunked_text = whole.decode(one_pass), chunked.decode(chunks)
    assert text and edit_distance(text, chunked_text) <= max(3, len(text) // 20)


@pytest.mark.parametrize("subsampling,factor", [("stack", 3), ("conv2d", 4), ("conv2d", 2), ("none", 1)])
def test_chunks_tile_the_output_of_every_subsampling(subsampling, factor, exp):
    from speechrecipe.config import ModelConfig
    from speechrecipe.model import CTCModel

    final = checkpoint.load(exp / "am/final.pt")
    vocab = final["model_config"]["vocab_size"]
    config = ModelConfig(
        input_dim=40, vocab_size=vocab, hidden=16, layers=1, subsampling=subsampling, subsampling_factor=factor
    )
    torch.manual_seed(0)
    final.update(model=CTCModel(config).state_dict(), model_config=config.to_dict())
    recognizer = Recognizer(final)
    whole = Transcriber(recognizer, method="greedy", chunk_seconds=1000)
    chunked = Transcriber(recognizer, method="greedy", chunk_seconds=3, overlap_seconds=0.5)
    generator = np.random.default_rng(0)
    for frames in (1000, 1001, 1002, 1003, 1234, 350):
        feats = generator.standard_normal((frames, 40)).astype(np.float32)
        one_pass, chunks = whole.log_probs(feats), chunked.log_probs(feats)
        assert chunks.shape == one_pass.shape, frames
        torch.testing.assert_close(chunks, one_pass, atol=0.05, rtol=0)  # only the LSTM's far context differs


def test_a_long_recording_decodes_in_bounded_chunks(transcriber, fsdd_recordings, tmp_path):
    files = [fsdd_wav(fsdd_recordings, i % 10, ("george", "jackson", "nicolas")[i % 3], i // 30) for i in range(150)]
    samples, rate = concatenate(files, 0.05)
    seconds = len(samples) / rate
    assert seconds > 60
    soundfile.write(tmp_path / "long.flac", samples, rate, format="FLAC")
    t = Transcriber(transcriber.recognizer, chunk_seconds=10, overlap_seconds=2)
    seen = []
    hook = t.recognizer.model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[:2])))
    try:
        result = t.transcribe(Source("long", str(tmp_path / "long.flac")), timings=True)
    finally:
        hook.remove()
    # The network never sees more than chunk_batch chunks of chunk_frames at once, whatever the length.
    assert len(seen) > 1 and max(b * n for b, n in seen) <= t.chunk_batch * t.chunk_frames
    assert max(n for _, n in seen) <= t.chunk_frames < seconds * 100
    assert len(result.text.split()) > 20
    check_ctm([("long", s, e - s, w) for w, s, e in result.words], {"long": seconds}, {"long": result.text})


# --- CMVN -------------------------------------------------------------------------


def test_a_speaker_cmvn_model_uses_each_files_own_statistics(exp, fsdd_recordings, tmp_path, capsys):
    final = checkpoint.load(exp / "am/final.pt")
    final["cmvn"]["mode"] = "speaker"
    checkpoint.save(final, tmp_path / "final.pt")
    t = Transcriber(Recognizer.load(tmp_path / "final.pt"))
    wav = fsdd_wav(fsdd_recordings, 5)
    feats = t.features(*read_audio(str(wav)))  # no speaker statistics: the file's own
    np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(feats.std(axis=0), 1, atol=1e-3)
    code, _out, err = run_main(capsys, tmp_path / "final.pt", wav)
    assert code == 0 and "speaker CMVN" in err and "utterance CMVN" in err
    assert "utterance CMVN" in transcribe.build_parser().format_help()
