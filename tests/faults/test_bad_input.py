"""Bad corpus input: each kind stops the run with a clear error (file, line, fix) before any expensive work,
and nothing the user wrote is modified; what is legitimate but unusual (stereo, another sample rate, very
short utterances, paths with spaces) is handled and said in the log. Real FSDD recordings throughout."""

import hashlib
import logging
import os
import shutil

import numpy as np
import pytest
import soundfile

from conftest import ROOT, run_script, write_fsdd_data_dir
from speechrecipe.config import FeatureConfig
from speechrecipe.datadir import BOM
from speechrecipe.dataset import FeatureSet, TokenCoverageError
from speechrecipe.features import compute_entry
from speechrecipe.tokens import Tokenizer

from .lib import load_scp, snakemake, write_config

VALIDATE = ROOT / "workflow/scripts/validate_data_dir.py"
MAKE_FEATURES = ROOT / "workflow/scripts/make_features.py"
GATHER = ROOT / "workflow/scripts/gather_features.py"


def copy_recordings(fsdd_recordings, folder, speakers, takes):
    """FSDD files copied (so that a test may break them) into a folder whose name has a space."""
    folder.mkdir(parents=True, exist_ok=True)
    for spk in speakers:
        for digit in range(10):
            for take in takes:
                shutil.copy(fsdd_recordings / f"{digit}_{spk}_{take}.wav", folder)
    return folder


@pytest.fixture
def data(fsdd_recordings, tmp_path):
    """A valid data dir: george and jackson, every digit once (20 utterances, george-0_05 .. jackson-9_05)."""
    audio = copy_recordings(fsdd_recordings, tmp_path / "my recordings", ["george", "jackson"], [5])
    return write_fsdd_data_dir(tmp_path / "data" / "train", audio, ["george", "jackson"], [5])


def snapshot(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rows(path):
    return path.read_bytes().decode("utf-8").splitlines()


def write_rows(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def wav_of(data, utt):
    return next(line.split(" ", 1)[1] for line in rows(data / "wav.scp") if line.startswith(utt + " "))


# Each case breaks the valid directory the way corpora do, and says where the error must point.
def unreadable_audio(data):
    with open(wav_of(data, "george-3_05"), "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    return "wav.scp", 4, "cannot be read"


def zero_length_audio(data):
    soundfile.write(wav_of(data, "george-3_05"), np.zeros(0, np.float32), 8000, subtype="PCM_16")
    return "wav.scp", 4, "is empty (0 samples)"


def missing_audio(data):
    os.unlink(wav_of(data, "george-3_05"))
    return "wav.scp", 4, "does not exist"


def byte_order_mark(data):
    (data / "text").write_bytes(BOM + (data / "text").read_bytes())
    return "text", 1, "the file starts with a UTF-8 byte-order mark"


def crlf_line_ends(data):
    (data / "utt2spk").write_bytes((data / "utt2spk").read_bytes().replace(b"\n", b"\r\n"))
    return "utt2spk", 1, "carriage return (CRLF line ends) on 20 of 20 line(s)"


def non_utf8_transcript(data):
    raw = (data / "text").read_bytes().replace(b"george-3_05 THREE", "george-3_05 THR\u00c9E".encode("latin-1"))
    (data / "text").write_bytes(raw)
    return "text", 4, "not valid UTF-8"


def duplicate_ids(data):
    lines = rows(data / "utt2spk")
    write_rows(data / "utt2spk", [*lines[:4], lines[3], *lines[4:]])
    return "utt2spk", 5, "duplicate key 'george-3_05' (first on line 4)"


def unsorted_ids(data):
    lines = rows(data / "text")
    lines[3], lines[4] = lines[4], lines[3]
    write_rows(data / "text", lines)
    return "text", 5, "'george-3_05' comes after 'george-4_05'"


def speaker_not_a_prefix(data):
    lines = [line.replace("george-3_05 george", "george-3_05 alice") for line in rows(data / "utt2spk")]
    write_rows(data / "utt2spk", lines)
    spk2utt = {}
    for line in lines:
        utt, spk = line.split()
        spk2utt.setdefault(spk, []).append(utt)
    write_rows(data / "spk2utt", [f"{s} {' '.join(u)}" for s, u in sorted(spk2utt.items())])
    return "utt2spk", 4, "speaker 'alice' is not a prefix of utterance 'george-3_05'"


def utt2spk_spk2utt_disagree(data):
    lines = rows(data / "spk2utt")  # george ..., jackson ...
    george, jackson = lines[0].split(" "), lines[1].split(" ")
    write_rows(data / "spk2utt", [" ".join([*george, jackson[1]]), " ".join([jackson[0], *jackson[2:]])])
    return "spk2utt", 1, "lists 'jackson-0_05' under speaker 'george', but utt2spk says 'jackson'"


CASES = [
    unreadable_audio,
    zero_length_audio,
    missing_audio,
    byte_order_mark,
    crlf_line_ends,
    non_utf8_transcript,
    duplicate_ids,
    unsorted_ids,
    speaker_not_a_prefix,
    utt2spk_spk2utt_disagree,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_data_dir_is_refused_with_file_line_and_fix_and_left_untouched(case, data):
    file, line, what = case(data)
    before = snapshot(data.parent.parent)
    result = run_script(VALIDATE, data, "--summary", data / "validation.txt", check=False)
    assert result.returncode != 0
    assert f"{data / file} line {line}" in result.stderr and what in result.stderr, result.stderr
    message = next(m for m in result.stderr.splitlines() if f"{data / file} line {line}" in m)
    assert "Fix" in message, message
    assert not (data / "validation.txt").exists(), "a summary was written for an invalid directory"
    assert snapshot(data.parent.parent) == before, "the validator changed the user's files"


def test_an_empty_transcript_is_accepted_and_counted_as_kaldi_accepts_it(data):
    lines = rows(data / "text")
    lines[3] = "george-3_05"  # a recording of silence or noise, say
    write_rows(data / "text", lines)
    result = run_script(VALIDATE, data, "--summary", data / "validation.txt")
    assert f"{data / 'text'}: 1 utterance(s) with an empty transcript, kept as Kaldi keeps them" in result.stderr
    assert "utterances\t20\n" in (data / "validation.txt").read_text()


def test_audio_with_nan_samples_stops_feature_extraction_naming_the_utterance(data, tmp_path):
    path = wav_of(data, "jackson-2_05")
    samples, rate = soundfile.read(path, dtype="float32")
    samples[100:110] = np.nan
    soundfile.write(path, samples, rate, subtype="FLOAT")
    result = run_script(MAKE_FEATURES, data, tmp_path / "fbank", "--config", '{"sample_rate": 8000}', check=False)
    assert result.returncode != 0
    assert "jackson-2_05" in result.stderr and "non-finite" in result.stderr and "Fix" in result.stderr
    assert not list((tmp_path / "fbank").rglob("feats.1.*")), "a job that failed left an output"


def test_a_bad_corpus_stops_the_recipe_before_any_feature_is_computed(fsdd_recordings, tmp_path):
    """Through Snakemake: an unsorted source data dir (corpus kaldi) fails the import, which names the user's file
    and line, before any feature job; the source is never modified. Fixed, the same sets (paths with spaces, a
    stereo and a 44.1 kHz recording among 8 kHz ones) go through feature extraction, which says what it did."""
    sources = tmp_path / "my corpus"
    audio = copy_recordings(fsdd_recordings, sources / "wav files", ["george", "jackson", "nicolas"], [5])
    stereo = audio / "4_george_5.wav"
    mono, rate = soundfile.read(stereo, dtype="int16")
    soundfile.write(stereo, np.stack([mono, mono], axis=1), rate, subtype="PCM_16")
    faster = audio / "6_george_5.wav"
    soundfile.write(faster, soundfile.read(faster, dtype="int16")[0], 44100, subtype="PCM_16")
    sets = {"train": ["george", "jackson"], "dev": ["nicolas"], "test": ["nicolas"]}
    for name, speakers in sets.items():
        write_fsdd_data_dir(sources / name, audio, speakers, [5])
    text = rows(sources / "train/text")
    text[3], text[4] = text[4], text[3]
    write_rows(sources / "train/text", text)
    workdir = tmp_path / "run"
    write_config(
        workdir,
        {"corpus": "kaldi", "tag": "bad", "kaldi_dirs": {k: str(sources / k) for k in sets}, "features": {"nj": 1}},
    )
    before = snapshot(sources)

    failed = snakemake(workdir, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{sources / 'train/text'} line 5: 'george-3_05' comes after 'george-4_05'" in output
    assert "Fix: sort the file in C order" in output
    assert not (workdir / "data/kaldi").exists(), "something was imported from an invalid source"
    assert not (workdir / "exp/make_fbank").exists() and "rule make_features" not in output
    assert snapshot(sources) == before, "the recipe modified the user's data directory"

    text[3], text[4] = text[4], text[3]
    write_rows(sources / "train/text", text)
    before = snapshot(sources)
    snakemake(workdir, "data/kaldi/fbank/train/feats.scp")
    log = (workdir / "exp/make_fbank/kaldi/train/log/make_features.1.log").read_text()
    assert "1 of 20 recording(s) have more than one channel: mixed down to mono" in log and "george-4_05" in log
    assert "19 of 20 recording(s) at 8000 Hz: resampled to 16000 Hz" in log
    assert "1 of 20 recording(s) at 44100 Hz: resampled to 16000 Hz" in log and "george-6_05" in log
    feats = load_scp(workdir, workdir / "data/kaldi/fbank/train/feats.scp")
    assert len(feats) == 20
    # Mixing two equal channels down gives the mono recording back: the same features, bit for bit.
    original = compute_entry(str(fsdd_recordings / "4_george_5.wav"), FeatureConfig())
    np.testing.assert_array_equal(feats["george-4_05"], original)
    assert snapshot(sources) == before


def test_paths_with_spaces_in_wav_scp(fsdd_recordings, tmp_path):
    folder = tmp_path / "my recordings" / "take one"
    folder.mkdir(parents=True)
    data_dir = write_fsdd_data_dir(tmp_path / "data", fsdd_recordings, ["lucas"], [0])
    lines = []
    for line in rows(data_dir / "wav.scp"):
        utt, path = line.split(" ", 1)
        target = folder / f"{utt} copy.wav"
        shutil.copy(path, target)
        lines.append(f"{utt} {target}")
    write_rows(data_dir / "wav.scp", lines)
    run_script(VALIDATE, data_dir, "--summary", data_dir / "validation.txt")
    config = '{"num_mel_bins": 23, "sample_rate": 8000}'
    run_script(MAKE_FEATURES, data_dir, tmp_path / "fbank", "--config", config)
    run_script(GATHER, data_dir, tmp_path / "fbank")
    feats = load_scp(tmp_path, tmp_path / "fbank/feats.scp")
    assert len(feats) == 10
    reference = compute_entry(str(fsdd_recordings / "7_lucas_0.wav"), FeatureConfig(num_mel_bins=23, sample_rate=8000))
    np.testing.assert_array_equal(feats["lucas-7_00"], reference)


def test_utterances_too_short_for_the_subsampling_are_dropped_with_a_count(
    fsdd_recordings, fsdd_features, tmp_path, caplog
):
    data_dir = write_fsdd_data_dir(tmp_path / "data", fsdd_recordings, ["lucas"], [0])
    samples, rate = soundfile.read(fsdd_recordings / "1_lucas_0.wav", dtype="int16")
    loud = int(np.argmax(np.abs(samples)))
    shorts = {"lucas-short_a": (0.02, "ONE"), "lucas-short_b": (0.06, "SEVEN EIGHT NINE")}
    table = {name: rows(data_dir / name) for name in ("wav.scp", "text", "utt2spk", "utt2dur")}
    for utt, (seconds, words) in shorts.items():
        clip = tmp_path / f"{utt}.wav"
        soundfile.write(clip, samples[loud : loud + int(seconds * rate)], rate, subtype="PCM_16")
        table["wav.scp"].append(f"{utt} {clip}")
        table["text"].append(f"{utt} {words}")
        table["utt2spk"].append(f"{utt} lucas")
        table["utt2dur"].append(f"{utt} {seconds:.3f}")
    for name, lines in table.items():
        write_rows(data_dir / name, lines)
    write_rows(data_dir / "spk2utt", ["lucas " + " ".join(line.split()[0] for line in table["utt2spk"])])
    run_script(VALIDATE, data_dir)

    out = tmp_path / "fbank"
    made = run_script(MAKE_FEATURES, data_dir, out, "--config", '{"num_mel_bins": 40, "sample_rate": 8000}')
    assert "1 utterance(s) shorter than one 25 ms frame have no features" in made.stderr
    run_script(GATHER, data_dir, out)
    caplog.set_level(logging.WARNING, logger="speechrecipe.dataset")
    tok = Tokenizer(fsdd_features / "tokens/sp.model")
    kept = FeatureSet(out, "utterance", tok, subsampling_factor=3)
    assert sorted(u.utt for u in kept.utterances) == [f"lucas-{d}_00" for d in range(10)]
    assert "dropped 2 of 12 utterance(s) too short for their transcript after 3x subsampling" in caplog.text
    assert "lucas-short_a" in caplog.text and "lucas-short_b" in caplog.text


def test_characters_outside_the_token_set_stop_training_before_the_first_epoch(fsdd_features, tmp_path):
    dev = tmp_path / "fbank dev"
    shutil.copytree(fsdd_features / "fbank/dev", dev)
    lines = rows(dev / "text")
    utt = lines[2].split()[0]
    lines[2] = f"{utt} Z\u00c9RO"
    write_rows(dev / "text", lines)
    exp_dir = tmp_path / "am"
    result = run_script(
        ROOT / "workflow/scripts/train_am.py",
        fsdd_features / "fbank/train",
        dev,
        fsdd_features / "tokens/sp.model",
        exp_dir,
        "--model",
        '{"hidden": 16, "layers": 1}',
        "--train",
        '{"max_epochs": 1}',
        "--no-progress",
        check=False,
    )
    assert result.returncode != 0
    assert f"{dev / 'text'} line 3: utterance '{utt}' has character(s) '\u00c9' outside the token set" in result.stderr
    assert "Fix: normalize these transcripts" in result.stderr
    assert not list(exp_dir.glob("epoch-*.pt")), "training started on transcripts it cannot represent"
    with pytest.raises(TokenCoverageError):
        FeatureSet(dev, "utterance", Tokenizer(fsdd_features / "tokens/sp.model"))
