"""eSpeak NG synthesis (speechrecipe.synth) and the synth_digits corpus (local/synth_digits.py).

These run the real library shipped by espeakng-loader; the whole file takes a
few seconds.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechrecipe import synth
from speechrecipe.datadir import validate
from speechrecipe.fileio import read_table
from speechrecipe.text import DIGIT_WORDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "local" / "synth_digits.py"
TINY = [
    "--num-train-speakers",
    "2",
    "--num-dev-speakers",
    "1",
    "--num-test-speakers",
    "1",
    "--utts-per-speaker",
    "3",
    "--seed",
    "7",
]


@pytest.fixture(scope="module")
def synth_digits():
    """local/synth_digits.py as a module (local/ is not a package)."""
    spec = importlib.util.spec_from_file_location("synth_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth_digits"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    del sys.modules["synth_digits"]


def test_sample_rate_is_native():
    assert synth.sample_rate() == 22050


def test_synthesis_is_deterministic_and_not_silent():
    first = synth.synthesize("three one four", "en-us+f2", rate=160, pitch=50)
    synth.synthesize("nine nine", "en+m3", rate=190, pitch=30)  # eSpeak state must not carry over
    again = synth.synthesize("three one four", "en-us+f2", rate=160, pitch=50)
    assert first.dtype == np.float32 and first.ndim == 1
    assert np.array_equal(first, again)
    assert 0.5 < len(first) / synth.sample_rate() < 3.0
    assert np.abs(first).max() <= 1.0
    assert np.sqrt(np.mean(first**2)) > 0.02  # speech, not silence


def test_speakers_differ():
    text = "five two"
    base = synth.synthesize(text, "en+f3", rate=160, pitch=50)
    for other in (
        synth.synthesize(text, "en+m3", rate=160, pitch=50),
        synth.synthesize(text, "en-us+f3", rate=160, pitch=50),
        synth.synthesize(text, "en+f3", rate=160, pitch=70),
        synth.synthesize(text, "en+f3", rate=200, pitch=50),
    ):
        assert len(other) != len(base) or not np.array_equal(other, base)
    assert len(synth.synthesize(text, "en+f3", rate=200)) < len(synth.synthesize(text, "en+f3", rate=130))


def test_bad_arguments_fail_clearly_and_leave_espeak_usable():
    with pytest.raises(synth.EspeakError, match="en-gb"):
        synth.synthesize("one", "en-gb")  # a language, not a voice name
    with pytest.raises(ValueError, match="pitch"):
        synth.synthesize("one", "en", pitch=101)
    assert len(synth.synthesize("one", "en")) > 0


def test_english_voices_and_variants_are_shipped(synth_digits):
    identifiers = {i.split("/")[-1].lower() for i, _ in synth.list_voices("en")}
    assert {a.lower() for a in synth_digits.ACCENTS} <= identifiers
    variants = {i.split("/")[-1] for i, _ in synth.list_voices("variant")}
    assert set(synth_digits.FEMALE_VARIANTS + synth_digits.MALE_VARIANTS) <= variants


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_held_out_speakers_are_new_but_reachable(synth_digits, seed):
    for counts in ({"train": 8, "dev": 2, "test": 2}, {"train": 2, "dev": 1, "test": 1}):
        sets = synth_digits.choose_speakers(seed, counts)
        assert [len(v) for v in sets.values()] == list(counts.values())
        voices = [s.voice for speakers in sets.values() for s in speakers]
        assert len(set(voices)) == len(voices)
        train = [s.voice.split("+") for s in sets["train"]]
        for held_out in sets["dev"] + sets["test"]:
            accent, variant = held_out.voice.split("+")
            assert accent in {a for a, _ in train} and variant in {v for _, v in train}
        for speakers in sets.values():
            for s in speakers:
                assert 130 <= s.rate <= 200 and 30 <= s.pitch <= 70
    assert synth_digits.choose_speakers(seed, counts) == sets


def run_cli(cwd: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_writes_valid_reproducible_data_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wav.scp paths are relative, like the recipe's
    run_cli(tmp_path, "--out-dir", "corpus", *TINY)
    speakers = {}
    for name, count in (("train", 2), ("dev", 1), ("test", 1)):
        d = validate(tmp_path / "corpus" / name)  # checks the audio files too
        speakers[name] = set(d.utt2spk.values())
        assert len(speakers[name]) == count and len(d.text) == 3 * count
        assert set(read_table(tmp_path / "corpus" / name / "utt2dur")) == set(d.text)
        for utt, transcript in d.text.items():
            assert utt.startswith(d.utt2spk[utt] + "-") and d.utt2spk[utt].startswith("synth")
            assert 1 <= len(transcript.split()) <= 5 and set(transcript.split()) <= set(DIGIT_WORDS)
            entry = d.wav_scp[utt]
            assert entry == f"corpus/wav/{d.utt2spk[utt]}/{utt}.wav"
            info = soundfile.info(entry)
            assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
            assert abs(info.frames / info.samplerate - d.utt2dur[utt]) < 0.001
            assert info.frames / info.samplerate > 0.1 + 0.3  # two edges of silence and a digit
    assert not speakers["train"] & (speakers["dev"] | speakers["test"])
    assert not speakers["dev"] & speakers["test"]

    before = snapshot(tmp_path / "corpus")
    run_cli(tmp_path, "--out-dir", "corpus", *TINY)
    assert snapshot(tmp_path / "corpus") == before


def test_cli_rejects_impossible_arguments(synth_digits, tmp_path):
    with pytest.raises(SystemExit) as stop:
        synth_digits.main(["--out-dir", str(tmp_path), "--min-digits", "4", "--max-digits", "2"])
    assert stop.value.code == 2
    assert synth_digits.main(["--out-dir", str(tmp_path), "--num-train-speakers", "200"]) == 1
    assert not any(tmp_path.iterdir())


SPEAK_FROM = """
import sys
import espeakng_loader
from speechrecipe import synth

real = espeakng_loader.get_data_path()
if sys.argv[1] != "-":
    espeakng_loader.get_data_path = lambda: sys.argv[1]  # as in a virtualenv of a checkout that deep
samples = synth.synthesize("three one four", "en-us+f2", 160, 50)
sys.stdout.buffer.write(samples.tobytes())
sys.stderr.write(synth._Session._paths[1])
"""


def speak_from(data_path: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SPEAK_FROM, data_path],
        capture_output=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def deep_path(base: Path, length: int) -> Path:
    """A folder under ``base`` whose path is at least ``length`` characters long."""
    path = base
    while len(str(path)) < length:
        path = path / ("d" * 40)
    path.mkdir(parents=True)
    return path


def test_synthesis_works_from_a_checkout_200_characters_deep(tmp_path):
    import espeakng_loader

    deep = deep_path(tmp_path, 200) / "espeak-ng-data"
    deep.symlink_to(espeakng_loader.get_data_path(), target_is_directory=True)
    assert len(str(deep)) > 200
    reference, far = speak_from("-"), speak_from(str(deep))
    assert reference.returncode == 0 and far.returncode == 0, far.stderr.decode()[-2000:]
    assert len(reference.stdout) > 10000 and far.stdout == reference.stdout  # bit-identical samples
    used = far.stderr.decode().strip().splitlines()[-1]
    assert len(used) < 120 and Path(used).is_symlink() and Path(used).resolve() == deep.resolve()
    again = speak_from(str(deep))  # the link is made once and reused
    assert again.stdout == reference.stdout and again.stderr.decode().strip().splitlines()[-1] == used


def test_the_short_link_is_refused_in_a_folder_that_is_not_private(tmp_path):
    import espeakng_loader

    deep = deep_path(tmp_path / "checkout", 200) / "espeak-ng-data"
    deep.symlink_to(espeakng_loader.get_data_path(), target_is_directory=True)
    shared_tmp = tmp_path / "tmp"
    (shared_tmp / f"speechrecipe-{os.getuid()}").mkdir(parents=True, mode=0o777)
    (shared_tmp / f"speechrecipe-{os.getuid()}").chmod(0o777)
    result = speak_from(str(deep), env={"TMPDIR": str(shared_tmp)})
    assert result.returncode != 0 and b"not a private folder" in result.stderr
    long_tmp = deep_path(tmp_path / "longtmp", 130)
    result = speak_from(str(deep), env={"TMPDIR": str(long_tmp)})
    assert result.returncode != 0 and b"point TMPDIR at a folder with a short path" in result.stderr
