"""Corpus preparation scripts (local/*.py) on real audio.

FSDD and LJ Speech come from ``../shared/data`` (skipped when absent);
LibriSpeech and the Kaldi import run on small trees the tests write.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import kaldi_validate_data_dir, write_fsdd_data_dir
from speechrecipe.datadir import BOM, DataDirError, validate
from speechrecipe.fileio import read_table
from speechrecipe.text import DIGIT_WORDS, normalize

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FSDD = SHARED / "fsdd"
LJSPEECH = SHARED / "ljspeech"

needs_fsdd = pytest.mark.skipif(
    not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD / 'recordings'} (shared data absent)"
)
needs_ljspeech = pytest.mark.skipif(
    not (LJSPEECH / "metadata.csv").is_file(), reason=f"LJ Speech not found at {LJSPEECH} (shared data absent)"
)


def load_script(name: str):
    """Import local/<name>.py as a module (the scripts are programs, not a package)."""
    module_name = f"local_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "local" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def speakers(data: Path) -> set[str]:
    return set(read_table(data / "utt2spk").values())


# --------------------------------------------------------------------------- FSDD

FSDD_ARGS = ["--connected-per-speaker", "4", "--seed", "3", "--no-download"]
FSDD_SETS = ["train", "dev", "test", "train_connected", "dev_connected", "test_connected", "train_all", "dev_all"]


@pytest.fixture(scope="module")
def fsdd_out(tmp_path_factory):
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD / 'recordings'} (shared data absent)")
    out = tmp_path_factory.mktemp("fsdd") / "data"
    assert load_script("fsdd").main(["--out-dir", str(out), "--corpus-dir", str(FSDD), *FSDD_ARGS]) == 0
    return out


@needs_fsdd
def test_fsdd_sets_and_default_speaker_split(fsdd_out):
    assert sorted(p.name for p in fsdd_out.iterdir()) == sorted([*FSDD_SETS, "wav"])
    for name in FSDD_SETS:
        validate(fsdd_out / name)
        for table in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur"):
            assert (fsdd_out / name / table).is_file()
    expected = {"train": {"george", "jackson", "lucas"}, "dev": {"nicolas"}, "test": {"yweweler"}}
    for split, spks in expected.items():
        assert speakers(fsdd_out / split) == spks
        assert speakers(fsdd_out / f"{split}_connected") == spks
    # speaker-disjoint
    assert not speakers(fsdd_out / "train_all") & (speakers(fsdd_out / "dev_all") | speakers(fsdd_out / "test"))
    # 10 digits x 50 takes per speaker, 4 connected utterances per speaker
    assert len(read_table(fsdd_out / "train" / "text")) == 1500
    assert len(read_table(fsdd_out / "dev" / "text")) == 500
    assert len(read_table(fsdd_out / "test_connected" / "text")) == 4
    # the union sets are exactly their parts
    for union, parts in (("train_all", ("train", "train_connected")), ("dev_all", ("dev", "dev_connected"))):
        for table in ("wav.scp", "text", "utt2spk", "utt2dur"):
            merged = {}
            for part in parts:
                merged.update(read_table(fsdd_out / part / table))
            assert read_table(fsdd_out / union / table) == merged


@needs_fsdd
def test_fsdd_isolated_transcripts_match_file_names(fsdd_out):
    text = read_table(fsdd_out / "train" / "text")
    wav_scp = read_table(fsdd_out / "train" / "wav.scp")
    utt2spk = read_table(fsdd_out / "train" / "utt2spk")
    assert text["george-0_george_12"] == "ZERO"
    for utt, words in text.items():
        path = Path(wav_scp[utt])
        digit, speaker, _ = path.stem.split("_")
        assert path.is_absolute() and path.is_file()
        assert utt == f"{speaker}-{path.stem}" and utt2spk[utt] == speaker
        assert words == DIGIT_WORDS[int(digit)]
    durations = {u: float(d) for u, d in read_table(fsdd_out / "train" / "utt2dur").items()}
    info = soundfile.info(wav_scp["george-0_george_12"])
    assert durations["george-0_george_12"] == pytest.approx(info.duration, abs=1e-3)


@needs_fsdd
def test_fsdd_connected_utterances(fsdd_out):
    iso_durations = {u: float(d) for u, d in read_table(fsdd_out / "train_all" / "utt2dur").items() if "conn" not in u}
    for split in ("train", "dev", "test"):
        data = fsdd_out / f"{split}_connected"
        text, wav_scp = read_table(data / "text"), read_table(data / "wav.scp")
        utt2dur = {u: float(d) for u, d in read_table(data / "utt2dur").items()}
        if split != "train":
            iso_durations = {u: float(d) for u, d in read_table(fsdd_out / split / "utt2dur").items()}
        for utt, words in text.items():
            speaker = read_table(data / "utt2spk")[utt]
            assert re.fullmatch(rf"{speaker}-conn\d{{4}}", utt)
            words = words.split()
            assert 2 <= len(words) <= 6 and set(words) <= set(DIGIT_WORDS)
            # the audio is generated under <out-dir>/wav/<set>/, 8 kHz, and utt2dur is its length
            path = Path(wav_scp[utt])
            assert path == fsdd_out / "wav" / f"{split}_connected" / f"{utt}.wav"
            info = soundfile.info(str(path))
            assert info.samplerate == 8000 and info.channels == 1
            assert utt2dur[utt] == pytest.approx(info.duration, abs=1e-3)
            # length: the digits (bounded by the speaker's shortest/longest take) plus the silences
            own = [d for u, d in iso_durations.items() if u.startswith(f"{speaker}-")]
            k = len(words)
            low = k * min(own) + (k - 1) * 0.05 + 2 * 0.02
            high = k * max(own) + (k - 1) * 0.25 + 2 * 0.10
            assert low - 0.01 <= info.duration <= high + 0.01
            # real speech inside, near-silence at the edges
            samples, _ = soundfile.read(str(path), dtype="float32")
            assert np.abs(samples).max() > 0.05
            assert np.abs(samples[:80]).max() < 0.01


@needs_fsdd
def test_fsdd_rerun_is_identical(fsdd_out):
    before = snapshot(fsdd_out)
    assert len([p for p in before if p.startswith("wav/")]) == 5 * 4
    assert load_script("fsdd").main(["--out-dir", str(fsdd_out), "--corpus-dir", str(FSDD), *FSDD_ARGS]) == 0
    assert snapshot(fsdd_out) == before


@needs_fsdd
def test_fsdd_corpus_dir_forms_and_errors(tmp_path, caplog):
    fsdd = load_script("fsdd")
    assert fsdd.find_recordings(FSDD, download=False) == FSDD / "recordings"
    assert fsdd.find_recordings(FSDD / "recordings", download=False) == FSDD / "recordings"
    missing = tmp_path / "nowhere" / "fsdd"
    with pytest.raises(fsdd.CorpusError) as info:
        fsdd.prepare(tmp_path / "out", missing, download=False)
    assert str(missing) in str(info.value) and "git clone" in str(info.value)
    assert not missing.exists()
    with pytest.raises(fsdd.CorpusError, match="no recordings of speaker.*bob.*choose among george"):
        fsdd.prepare(tmp_path / "out", FSDD, dev_speakers=["bob"], download=False)
    with pytest.raises(fsdd.CorpusError, match="both --dev-speakers and --test-speakers"):
        fsdd.prepare(tmp_path / "out", FSDD, dev_speakers=["lucas"], test_speakers=["lucas"], download=False)
    # the command line reports the error and fails
    assert fsdd.main(["--out-dir", str(tmp_path / "out"), "--corpus-dir", str(missing), "--no-download"]) == 1
    assert str(missing) in caplog.text
    assert not (tmp_path / "out").exists()


@needs_fsdd
def test_fsdd_train_speakers(tmp_path, fsdd_out, caplog):
    """--train-speakers narrows train and train_connected (e.g. to one speaker); dev and test stay as they were."""
    fsdd = load_script("fsdd")
    out = tmp_path / "data"
    assert fsdd.main(["--out-dir", str(out), "--corpus-dir", str(FSDD), *FSDD_ARGS, "--train-speakers", "george"]) == 0
    for name in ("train", "train_connected", "train_all"):
        validate(out / name)
        assert speakers(out / name) == {"george"}
    assert len(read_table(out / "train" / "text")) == 500
    assert len(read_table(out / "train_connected" / "text")) == 4
    # the one speaker's utterances, isolated and connected, are those of the default split (same seed)
    for name in ("train", "train_connected"):
        full = {u: t for u, t in read_table(fsdd_out / name / "text").items() if u.startswith("george-")}
        assert read_table(out / name / "text") == full
    assert snapshot(out / "wav" / "train_connected") == {
        p: h for p, h in snapshot(fsdd_out / "wav" / "train_connected").items() if p.startswith("george-")
    }
    for name in ("dev", "test", "dev_connected", "test_connected", "dev_all"):
        assert read_table(out / name / "text") == read_table(fsdd_out / name / "text")

    # several speakers; errors: unknown, held out, none
    sets = fsdd.prepare(
        tmp_path / "two", FSDD, train_speakers=["lucas", "jackson"], connected_per_speaker=0, download=False
    )
    assert set(sets["train_all"].utt2spk.values()) == {"jackson", "lucas"}
    with pytest.raises(fsdd.CorpusError, match="--train-speakers: no recordings of speaker.*bob"):
        fsdd.prepare(tmp_path / "bad", FSDD, train_speakers=["bob"], download=False)
    with pytest.raises(fsdd.CorpusError, match="nicolas are in --train-speakers and held out"):
        fsdd.prepare(tmp_path / "bad", FSDD, train_speakers=["george", "nicolas"], download=False)
    with pytest.raises(fsdd.CorpusError, match="--train-speakers names no speaker"):
        fsdd.prepare(tmp_path / "bad", FSDD, train_speakers=[], download=False)
    assert (
        fsdd.main(
            [
                "--out-dir",
                str(tmp_path / "bad"),
                "--corpus-dir",
                str(FSDD),
                "--no-download",
                "--train-speakers",
                "yweweler",
            ]
        )
        == 1
    )
    assert "yweweler are in --train-speakers" in caplog.text
    assert not (tmp_path / "bad").exists()


def test_fsdd_downloads_a_missing_corpus(tmp_path, monkeypatch):
    """A missing corpus dir is filled from the GitHub archive (here a file:// URL with the same layout)."""
    import zipfile

    fsdd = load_script("fsdd")
    archive = tmp_path / "master.zip"
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("free-spoken-digit-dataset-master/README.md", "FSDD")
        for speaker in ("alpha", "bravo", "charlie"):
            for digit in range(10):
                wav = tmp_path / "take.wav"
                soundfile.write(wav, (0.2 * rng.standard_normal(2000)).astype(np.float32), 8000, subtype="PCM_16")
                z.write(wav, f"free-spoken-digit-dataset-master/recordings/{digit}_{speaker}_0.wav")
    monkeypatch.setattr(fsdd, "URL", archive.as_uri())
    corpus = tmp_path / "corpus" / "fsdd"
    sets = fsdd.prepare(
        tmp_path / "out", corpus, dev_speakers=["bravo"], test_speakers=["charlie"], connected_per_speaker=2
    )
    assert len(list((corpus / "recordings").glob("*.wav"))) == 30
    assert not [p for p in corpus.iterdir() if p.name != "recordings"]  # no download leftovers
    assert sorted(set(sets["train_all"].utt2spk.values())) == ["alpha"]
    assert sets["dev"].text["bravo-7_bravo_0"] == "SEVEN"
    assert len(sets["train_all"].text) == 12

    monkeypatch.setattr(fsdd, "URL", (tmp_path / "missing.zip").as_uri())
    with pytest.raises(fsdd.CorpusError, match="downloading .*missing.zip failed"):
        fsdd.prepare(tmp_path / "out2", tmp_path / "other")
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------- LJ Speech


@needs_ljspeech
def test_ljspeech_sets(tmp_path):
    ljspeech = load_script("ljspeech")
    out = tmp_path / "data"
    assert ljspeech.main(["--out-dir", str(out), "--corpus-dir", str(LJSPEECH)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev", "test", "train"]
    texts = {name: read_table(out / name / "text") for name in ("train", "dev", "test")}
    assert [len(t) for t in texts.values()] == [275, 25, 25]
    # held-out tail of the sorted clip list: dev before test
    clips = sorted(line.split("|")[0] for line in (LJSPEECH / "metadata.csv").read_text(encoding="utf-8").splitlines())
    assert list(texts["test"]) == clips[-25:]
    assert list(texts["dev"]) == clips[-50:-25]
    assert list(texts["train"]) == clips[:-50]
    # normalized column, through text.normalize
    normalized = {
        f[0]: f[2] for f in (l.split("|") for l in (LJSPEECH / "metadata.csv").read_text(encoding="utf-8").splitlines())
    }
    assert texts["train"]["LJ001-0001"].startswith("PRINTING IN THE ONLY SENSE WITH WHICH WE ARE AT PRESENT CONCERNED")
    for name, text in texts.items():
        assert speakers(out / name) == {"LJ"}
        for utt, words in text.items():
            assert words == normalize(normalized[utt]) and words == words.upper()
            assert not re.search(r"[^A-Z' ]", words), words
    d = validate(out / "train")
    # An absolute path to the clip (the same file whether or not ../shared is reached through a link)
    assert Path(d.wav_scp["LJ001-0001"]).is_absolute()
    assert os.path.samefile(d.wav_scp["LJ001-0001"], LJSPEECH / "wavs" / "LJ001-0001.wav")
    assert d.utt2dur["LJ001-0001"] == pytest.approx(soundfile.info(d.wav_scp["LJ001-0001"]).duration, abs=1e-3)
    total = sum(sum(validate(out / name).utt2dur.values()) for name in texts)
    assert 30 * 60 < total < 40 * 60  # "about 36 minutes"


@needs_ljspeech
def test_ljspeech_command_line_by_hand(tmp_path):
    """Runnable as a program from the project root, options included."""
    result = subprocess.run(
        [
            sys.executable,
            "local/ljspeech.py",
            "--out-dir",
            str(tmp_path / "lj"),
            "--corpus-dir",
            str(LJSPEECH),
            "--num-dev",
            "10",
            "--num-test",
            "5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"train +310 utterances, 1 speakers", result.stderr)
    assert len(read_table(tmp_path / "lj" / "test" / "text")) == 5


def test_ljspeech_errors(tmp_path):
    ljspeech = load_script("ljspeech")
    corpus = tmp_path / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True)
    with pytest.raises(ljspeech.CorpusError) as info:
        ljspeech.prepare(tmp_path / "out", corpus)
    assert f"{corpus / 'metadata.csv'}: missing" in str(info.value)

    for clip in ("LJ001-0001", "LJ001-0002"):
        soundfile.write(corpus / "wavs" / f"{clip}.wav", np.zeros(2205, np.float32) + 0.01, 22050, subtype="PCM_16")
    (corpus / "metadata.csv").write_text("LJ001-0001|Hello.|Hello.\nLJ001-0002|Two fields only\n", encoding="utf-8")
    with pytest.raises(ljspeech.CorpusError) as info:
        ljspeech.prepare(tmp_path / "out", corpus, num_dev=0, num_test=1)
    assert f"{corpus / 'metadata.csv'} line 2: 2 field(s), expected 3" in str(info.value)

    (corpus / "metadata.csv").write_text("LJ001-0001|Hello.|Hello.\nLJ001-0003|Gone.|Gone.\n", encoding="utf-8")
    with pytest.raises(ljspeech.CorpusError, match=r"metadata.csv line 2: clip LJ001-0003 has no audio"):
        ljspeech.prepare(tmp_path / "out", corpus, num_dev=0, num_test=1)

    (corpus / "metadata.csv").write_text(
        "LJ001-0001|Hello.|Hello.\nLJ001-0002|Mr. Smith's|Mister Smith's\n", encoding="utf-8"
    )
    with pytest.raises(ljspeech.CorpusError, match="leave at least one clip for train"):
        ljspeech.prepare(tmp_path / "out", corpus, num_dev=1, num_test=1)
    sets = ljspeech.prepare(tmp_path / "out", corpus, num_dev=0, num_test=1)
    assert sorted(sets) == ["test", "train"] and not (tmp_path / "out" / "dev").exists()
    assert read_table(tmp_path / "out" / "test" / "text") == {"LJ001-0002": "MISTER SMITH'S"}


# --------------------------------------------------------------------------- LibriSpeech

LIBRI = {  # subset -> speaker -> chapter -> transcripts
    "train-clean-100": {
        "84": {"121123": ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"]},
        "841": {"3005": ["DON'T YOU SEE", "MORREL HAD TURNED PALE"], "3006": ["THE END"]},
    },
    "dev-clean": {"1272": {"128104": ["MISTER QUILTER IS THE APOSTLE"]}},
    "test-clean": {"1089": {"134686": ["HE HOPED THERE WOULD BE STEW FOR DINNER"]}},
}


@pytest.fixture
def librispeech_corpus(tmp_path) -> Path:
    """A tiny LibriSpeech tree: real FLAC files (16 kHz) and trans.txt files, as openslr ships them."""
    root = tmp_path / "corpora" / "LibriSpeech"
    rng = np.random.default_rng(0)
    for subset, spks in LIBRI.items():
        for spk, chapters in spks.items():
            for chapter, lines in chapters.items():
                folder = root / subset / spk / chapter
                folder.mkdir(parents=True)
                rows = []
                for n, words in enumerate(lines):
                    utt = f"{spk}-{chapter}-{n:04d}"
                    samples = (0.1 * rng.standard_normal(1600 * (n + 2))).astype(np.float32)
                    soundfile.write(folder / f"{utt}.flac", samples, 16000, format="FLAC", subtype="PCM_16")
                    rows.append(f"{utt} {words}\n")
                (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(rows), encoding="utf-8")
    return tmp_path / "corpora"


def test_librispeech(librispeech_corpus, tmp_path):
    librispeech = load_script("librispeech")
    out = tmp_path / "data"
    assert librispeech.main(["--out-dir", str(out), "--corpus-dir", str(librispeech_corpus)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev", "test", "train"]
    train = validate(out / "train")
    assert train.utterances == ["84-121123-0000", "84-121123-0001", "841-3005-0000", "841-3005-0001", "841-3006-0000"]
    # speaker = <spk>; 84 and 841 stay apart and in the same order by utterance and by speaker
    assert train.utt2spk["84-121123-0001"] == "84" and train.utt2spk["841-3006-0000"] == "841"
    assert (out / "train" / "spk2utt").read_text().splitlines() == [
        "84 84-121123-0000 84-121123-0001",
        "841 841-3005-0000 841-3005-0001 841-3006-0000",
    ]
    assert train.text["841-3005-0000"] == "DON'T YOU SEE"
    assert train.utt2dur["841-3005-0001"] == pytest.approx(0.3)
    flac = Path(train.wav_scp["84-121123-0000"])
    assert flac.is_absolute() and flac.name == "84-121123-0000.flac"
    assert validate(out / "dev").text == {"1272-128104-0000": "MISTER QUILTER IS THE APOSTLE"}
    assert speakers(out / "test") == {"1089"}


def test_librispeech_subset_choice_and_errors(librispeech_corpus, tmp_path):
    librispeech = load_script("librispeech")
    # LibriSpeech/ itself is accepted too; a set may join several subsets
    sets = librispeech.prepare(
        tmp_path / "a",
        librispeech_corpus / "LibriSpeech",
        train_subsets=["train-clean-100", "dev-clean"],
        dev_subsets=["test-clean"],
        test_subsets=[],
    )
    assert sorted(sets) == ["dev", "train"] and not (tmp_path / "a" / "test").exists()
    assert len(sets["train"].text) == 6 and speakers(tmp_path / "a" / "train") == {"84", "841", "1272"}
    with pytest.raises(librispeech.CorpusError, match="subset test-clean is given for both dev and test"):
        librispeech.prepare(tmp_path / "b", librispeech_corpus, dev_subsets=["test-clean"])
    with pytest.raises(librispeech.CorpusError) as info:
        librispeech.prepare(tmp_path / "b", librispeech_corpus, train_subsets=["train-clean-360"])
    message = str(info.value)
    assert str(librispeech_corpus / "LibriSpeech") in message and "train-clean-360" in message
    assert "present: dev-clean, test-clean, train-clean-100" in message and "openslr.org/12" in message
    # a transcript line whose audio is missing names the trans.txt file and line
    (librispeech_corpus / "LibriSpeech" / "dev-clean" / "1272" / "128104" / "1272-128104-0000.flac").unlink()
    with pytest.raises(
        librispeech.CorpusError, match=r"1272-128104\.trans\.txt line 1: .*1272-128104-0000\.flac does not exist"
    ):
        librispeech.prepare(tmp_path / "c", librispeech_corpus)


# --------------------------------------------------------------------------- Kaldi / ESPnet import


def write_kaldi_dir(folder: Path, audio: dict[str, Path], segments: bool = False) -> Path:
    """A hand-made Kaldi data dir with lower-case, punctuated text (which must be copied as is)."""
    folder.mkdir(parents=True)
    utts = {"alice-001": "hello, world!", "alice-002": "it's me", "bob-001": "Good-bye."}
    if segments:
        (folder / "wav.scp").write_text("".join(f"{r} {p}\n" for r, p in sorted(audio.items())), encoding="utf-8")
        (folder / "segments").write_text(
            "alice-001 alice-rec 0.00 0.40\nalice-002 alice-rec 0.50 1.25\nbob-001 bob-rec 0.10 0.30\n",
            encoding="utf-8",
        )
    else:
        (folder / "wav.scp").write_text(
            f"alice-001 {audio['a1']}\nalice-002 {audio['a2']}\nbob-001 cat '{audio['b1']}' |\n", encoding="utf-8"
        )
    (folder / "text").write_text("".join(f"{u} {t}\n" for u, t in utts.items()), encoding="utf-8")
    (folder / "utt2spk").write_text("alice-001 alice\nalice-002 alice\nbob-001 bob\n", encoding="utf-8")
    (folder / "spk2utt").write_text("alice alice-001 alice-002\nbob bob-001\n", encoding="utf-8")
    (folder / "feats.scp").write_text("alice-001 feats.ark:10\nalice-002 feats.ark:20\nbob-001 feats.ark:30\n")
    return folder


@pytest.fixture
def kaldi_audio(tmp_path) -> dict[str, Path]:
    audio = tmp_path / "kaldi" / "wav"
    audio.mkdir(parents=True)
    paths = {}
    for name, seconds in (("a1", 0.5), ("a2", 0.75), ("b1", 0.25), ("alice-rec", 1.5), ("bob-rec", 0.5)):
        paths[name] = audio / f"{name}.wav"
        soundfile.write(paths[name], np.full(int(seconds * 16000), 0.05, np.float32), 16000, subtype="PCM_16")
    return paths


def test_kaldi_import(tmp_path, kaldi_audio, monkeypatch):
    kaldi = load_script("kaldi")
    plain = write_kaldi_dir(tmp_path / "kaldi" / "data" / "train", kaldi_audio)
    with_segments = write_kaldi_dir(
        tmp_path / "kaldi" / "data" / "dev", {r: kaldi_audio[r] for r in ("alice-rec", "bob-rec")}, segments=True
    )
    sources_before = snapshot(tmp_path / "kaldi")
    out = tmp_path / "data"
    assert kaldi.main(["--out-dir", str(out), "--set", f"train={plain}", f"dev={with_segments}"]) == 0

    assert snapshot(tmp_path / "kaldi") == sources_before  # the source is never touched
    for name, source in (("train", plain), ("dev", with_segments)):
        copy = out / name
        for table in ("wav.scp", "text", "utt2spk", "spk2utt", "segments"):
            if (source / table).exists():
                assert (copy / table).read_bytes() == (source / table).read_bytes()  # byte for byte
        assert not (copy / "feats.scp").exists()
        validate(copy)
    assert read_table(out / "train" / "text")["alice-001"] == "hello, world!"  # not normalized
    # utt2dur computed: from the audio (the pipe entry is run) and from segments
    assert read_table(out / "train" / "utt2dur") == {"alice-001": "0.500", "alice-002": "0.750", "bob-001": "0.250"}
    assert read_table(out / "dev" / "utt2dur") == {"alice-001": "0.400", "alice-002": "0.750", "bob-001": "0.200"}
    assert (out / "dev" / "segments").is_file() and not (out / "train" / "segments").exists()

    # an existing utt2dur is copied, not recomputed
    (plain / "utt2dur").write_text("alice-001 0.5\nalice-002 0.75\nbob-001 0.25\n", encoding="utf-8")
    assert kaldi.main(["--out-dir", str(out), "--set", f"train={plain}"]) == 0
    assert (out / "train" / "utt2dur").read_text() == "alice-001 0.5\nalice-002 0.75\nbob-001 0.25\n"

    # relative wav.scp paths are kept unchanged: they are relative to where the recipe runs
    monkeypatch.chdir(tmp_path / "kaldi")
    relative = tmp_path / "kaldi" / "data" / "rel"
    relative.mkdir()
    (relative / "wav.scp").write_text("alice-001 wav/a1.wav\n", encoding="utf-8")
    for table, line in (("text", "alice-001 HELLO"), ("utt2spk", "alice-001 alice"), ("spk2utt", "alice alice-001")):
        (relative / table).write_text(line + "\n", encoding="utf-8")
    assert kaldi.main(["--out-dir", str(out), "--set", f"rel={relative}"]) == 0
    assert (out / "rel" / "wav.scp").read_text() == "alice-001 wav/a1.wav\n"
    assert read_table(out / "rel" / "utt2dur") == {"alice-001": "0.500"}


def test_kaldi_import_errors_name_the_source(tmp_path, kaldi_audio, caplog):
    kaldi = load_script("kaldi")
    good = write_kaldi_dir(tmp_path / "kaldi" / "data" / "train", kaldi_audio)
    broken = write_kaldi_dir(tmp_path / "kaldi" / "data" / "dev", kaldi_audio)
    rows = (broken / "text").read_text().splitlines()
    (broken / "text").write_text("\n".join([rows[1], rows[0], rows[2]]) + "\n")
    kaldi_audio["a2"].unlink()

    out = tmp_path / "data"
    with pytest.raises(DataDirError) as info:
        kaldi.prepare(out, {"train": good, "dev": broken})
    message = str(info.value)
    assert f"source data directory for set 'train' ({good}) is invalid" in message
    assert f"{good / 'wav.scp'} line 2: 'alice-002': audio file '{kaldi_audio['a2']}' does not exist" in message
    assert not out.exists()  # every source is checked before anything is written

    soundfile.write(kaldi_audio["a2"], np.full(800, 0.05, np.float32), 16000)
    assert kaldi.main(["--out-dir", str(out), "--set", f"train={good}", f"dev={broken}"]) == 1
    assert f"{broken / 'text'} line 2: 'alice-001' comes after 'alice-002'" in caplog.text
    assert not out.exists()

    with pytest.raises(kaldi.KaldiImportError, match="expected NAME=PATH"):
        kaldi.parse_sets([str(good)])
    with pytest.raises(kaldi.KaldiImportError, match="given twice"):
        kaldi.parse_sets([f"train={good}", f"train={broken}"])
    with pytest.raises(kaldi.KaldiImportError, match="no such directory"):
        kaldi.prepare(out, {"train": tmp_path / "nope"})
    with pytest.raises(kaldi.KaldiImportError, match="the source is the destination"):
        kaldi.prepare(good.parent, {"train": good})


# --------------------------------------------------------------------------- Kaldi data directories as users have them
# Each imports into a copy that Kaldi's own validate_data_dir.sh accepts, saying what it changed, or is refused
# with every problem named (file, line, what is wrong).

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt")


@pytest.fixture
def fsdd_kaldi_dir(tmp_path, fsdd_recordings) -> Path:
    """A valid Kaldi data dir (no utt2dur) of real FSDD recordings: george and jackson, every digit, takes 5 and 6."""
    source = write_fsdd_data_dir(tmp_path / "kaldi" / "train", fsdd_recordings, ["george", "jackson"], [5, 6])
    (source / "utt2dur").unlink()
    return source


def import_accepted_by_kaldi(source: Path, out: Path) -> Path:
    """Import ``source`` as set 'train' under ``out``; check the source is untouched and Kaldi accepts the copy."""
    before = snapshot(source)
    assert load_script("kaldi").main(["--out-dir", str(out), "--set", f"train={source}"]) == 0
    assert snapshot(source) == before
    accepted, kaldi_says = kaldi_validate_data_dir(out / "train")
    assert accepted, kaldi_says
    return out / "train"


def crlf_line_ends(source: Path) -> tuple[str, str]:  # a Windows editor
    for table in TABLES:
        (source / table).write_bytes((source / table).read_bytes().replace(b"\n", b"\r\n"))
    return "CRLF line ends made LF", "wav.scp (40 lines), text (40 lines), utt2spk (40 lines), spk2utt (2 lines)"


def byte_order_mark(source: Path) -> tuple[str, str]:  # Notepad's "UTF-8" until 2019
    (source / "text").write_bytes(BOM + (source / "text").read_bytes())
    return "UTF-8 byte-order mark removed", "text (1 line)"


def tab_after_the_id(source: Path) -> tuple[str, str]:  # a spreadsheet's export
    for table in ("wav.scp", "text"):
        rows = (source / table).read_text(encoding="utf-8").splitlines()
        (source / table).write_text("".join(r.replace(" ", "\t", 1) + "\n" for r in rows), encoding="utf-8")
    return "tab or several spaces/tabs after the id made one space", "wav.scp (40 lines), text (40 lines)"


def last_line_without_newline(source: Path) -> tuple[str, str]:
    (source / "utt2spk").write_bytes((source / "utt2spk").read_bytes().rstrip(b"\n"))
    return "newline added after the last line", "utt2spk (1 line)"


ACCIDENTS = [crlf_line_ends, byte_order_mark, tab_after_the_id, last_line_without_newline]


@pytest.mark.parametrize("accident", ACCIDENTS, ids=[a.__name__ for a in ACCIDENTS])
def test_kaldi_import_makes_tolerated_forms_and_encoding_accidents_canonical_and_says_so(
    accident, fsdd_kaldi_dir, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    intended = {table: (fsdd_kaldi_dir / table).read_bytes() for table in TABLES}
    change, touched = accident(fsdd_kaldi_dir)
    copy = import_accepted_by_kaldi(fsdd_kaldi_dir, tmp_path / "data")
    assert f"train: {change} in the copy of {fsdd_kaldi_dir}: {touched}" in caplog.text
    assert {table: (copy / table).read_bytes() for table in TABLES} == intended
    assert len(read_table(copy / "utt2dur")) == 40


def test_kaldi_import_keeps_empty_transcripts_as_kaldi_does(fsdd_kaldi_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    rows = (fsdd_kaldi_dir / "text").read_text(encoding="utf-8").splitlines()
    assert rows[6].startswith("george-3_05 ")
    rows[6] = "george-3_05"  # e.g. a recording of silence or noise
    (fsdd_kaldi_dir / "text").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    copy = import_accepted_by_kaldi(fsdd_kaldi_dir, tmp_path / "data")
    assert (copy / "text").read_bytes() == (fsdd_kaldi_dir / "text").read_bytes()
    assert validate(copy).text["george-3_05"] == ""
    assert "1 utterance(s) with an empty transcript, kept as Kaldi keeps them (e.g. george-3_05)" in caplog.text


def test_kaldi_import_reports_every_failing_wav_scp_command_with_its_line(fsdd_kaldi_dir, tmp_path, caplog):
    rows = [line.split(" ", 1) for line in (fsdd_kaldi_dir / "wav.scp").read_text(encoding="utf-8").splitlines()]
    broken = {}  # line number -> utterance, for 32 of the 40 commands: more than the 20 listed
    lines = []
    for number, (utt, path) in enumerate(rows, start=1):
        if number % 5 != 1:
            path = path.replace(".wav", ".missing.wav")
            broken[number] = utt
        lines.append(f"{utt} cat '{path}' |\n")
    (fsdd_kaldi_dir / "wav.scp").write_text("".join(lines), encoding="utf-8")
    assert len(broken) > 20
    out = tmp_path / "data"
    assert load_script("kaldi").main(["--out-dir", str(out), "--set", f"train={fsdd_kaldi_dir}"]) == 1
    assert f"set 'train': {len(broken)} of 40 wav.scp entries cannot be read to measure utt2dur" in caplog.text
    listed = [
        n for n, utt in broken.items() if f"{fsdd_kaldi_dir / 'wav.scp'} line {n}: '{utt}': command" in caplog.text
    ]
    assert listed == sorted(broken)[:20]
    first = next(line for line in caplog.text.splitlines() if f"wav.scp line {min(broken)}:" in line)
    # its stderr follows (shortened in the message, so at a long checkout path it may end before the file name)
    assert re.search(r"command 'cat '.*\.missing\.wav'' failed: cat: /", first), first
    assert f"... and {len(broken) - 20} more entries." in caplog.text
    assert not out.exists()  # measured before anything is written


def test_kaldi_import_warns_about_audio_that_is_not_wav_whatever_its_name(fsdd_kaldi_dir, tmp_path, caplog):
    if "MP3" not in soundfile.available_formats():
        pytest.skip(f"this libsndfile ({soundfile.__libsndfile_version__}) cannot write MP3 (needs >= 1.1)")
    wav_scp = read_table(fsdd_kaldi_dir / "wav.scp")
    utts = sorted(wav_scp)[:7]
    for utt in utts:  # real recordings, re-encoded as MP3 under a .wav name
        samples, rate = soundfile.read(wav_scp[utt])
        disguised = tmp_path / "mp3" / f"{utt}.wav"
        disguised.parent.mkdir(exist_ok=True)
        soundfile.write(disguised, samples, rate, format="MP3")
        wav_scp[utt] = str(disguised)
    (fsdd_kaldi_dir / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in wav_scp.items()), encoding="utf-8")
    copy = import_accepted_by_kaldi(fsdd_kaldi_dir, tmp_path / "data")
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"train: 7 file(s) in {fsdd_kaldi_dir / 'wav.scp'} are not WAV files" in warning
    for number, utt in enumerate(utts[:5], start=1):  # the first five, then a count
        assert f"line {number} '{tmp_path / 'mp3' / utt}.wav' is MP3" in warning
    assert utts[5] not in warning and "and 2 more" in warning
    assert "Kaldi's tools" in warning and "ffmpeg -i in.wav" in warning
    assert validate(copy).wav_scp == wav_scp  # the recipe itself reads them
