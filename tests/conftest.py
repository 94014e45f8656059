"""Shared fixtures: paths, and a small real-audio feature set built by the recipe's own scripts."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
KALDI = ROOT.parent / "shared" / "tools" / "kaldi"  # Kaldi's own utils/, to check the recipe against
sys.path.insert(0, str(ROOT / "workflow"))


SNAKEMAKE = pathlib.Path(sys.executable).with_name("snakemake")
# The tiniest synth_digits corpus the whole recipe runs on in seconds (options of local/synth_digits.py).
TINY_CORPUS = {
    "utts_per_speaker": 8,
    "num_train_speakers": 2,
    "num_dev_speakers": 1,
    "num_test_speakers": 1,
    "max_digits": 3,
}


def snakemake_on(workdir) -> list[str]:
    """The start of a snakemake command on the recipe's Snakefile, with data/ and exp/ under ``workdir``."""
    return [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]


def train_am_on(base, exp_dir, model: dict, train: dict, cmvn: str = "speaker") -> list[str]:
    """A train_am.py command on conftest's FSDD features under ``base`` (see fsdd_features); more options follow."""
    script = ROOT / "workflow/scripts/train_am.py"
    sets = [base / "fbank/train", base / "fbank/dev", base / "tokens/sp.model", exp_dir]
    return [
        sys.executable,
        str(script),
        *map(str, sets),
        "--model",
        json.dumps(model),
        "--train",
        json.dumps(train),
        "--cmvn",
        cmvn,
    ]


def run_script(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    """Run a stage script (or local/ script) the way a user would, with this interpreter."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=kwargs.pop("cwd", ROOT),
        capture_output=True,
        text=True,
        check=check,
        **kwargs,
    )


def kaldi_validate_data_dir(data: pathlib.Path) -> tuple[bool, str]:
    """Kaldi's own ``utils/validate_data_dir.sh --no-feats`` on ``data``: (accepted, what it printed).

    Skips the test when Kaldi's utils (``../shared/tools/kaldi``) or perl are missing.
    """
    if not (KALDI / "utils" / "validate_data_dir.sh").is_file():
        pytest.skip(f"Kaldi's utils not found at {KALDI} (the shared tools folder beside the project)")
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed; Kaldi's validate_data_dir.sh needs it")
    result = subprocess.run(
        ["bash", "utils/validate_data_dir.sh", "--no-feats", str(data.absolute())],
        cwd=KALDI,
        check=False,
        capture_output=True,
        text=True,
    )
    # Some of its refusals end in `echo ... && exit;`, status 0: only its last line says it passed.
    accepted = result.returncode == 0 and "Successfully validated data-directory" in result.stdout
    return accepted, result.stdout + result.stderr


@pytest.fixture(scope="session")
def fsdd_recordings() -> pathlib.Path:
    path = SHARED_DATA / "fsdd" / "recordings"
    if not path.is_dir():
        pytest.skip(f"FSDD not found at {path} (the shared data folder beside the project)")
    return path


def write_fsdd_data_dir(out: pathlib.Path, recordings: pathlib.Path, speakers, takes) -> pathlib.Path:
    from speechrecipe.audio import duration
    from speechrecipe.datadir import DataDir
    from speechrecipe.text import DIGIT_WORDS

    data = DataDir()
    for spk in speakers:
        for digit in range(10):
            for take in takes:
                wav = recordings / f"{digit}_{spk}_{take}.wav"
                utt = f"{spk}-{digit}_{take:02d}"
                data.wav_scp[utt] = str(wav)
                data.text[utt] = DIGIT_WORDS[digit]
                data.utt2spk[utt] = spk
                data.utt2dur[utt] = duration(str(wav))
    data.save(out)
    return out


@pytest.fixture(scope="session")
def fsdd_features(tmp_path_factory, fsdd_recordings):
    """Real FSDD digits as data dirs, fbank feature dirs (via the stage scripts) and a tokenizer.

    train: george + jackson, takes 5-9 (100 utts); dev: nicolas, takes 5-6 (20 utts).
    """
    base = tmp_path_factory.mktemp("fsdd")
    config = '{"type": "fbank", "num_mel_bins": 40, "sample_rate": 8000}'
    sets = {"train": (["george", "jackson"], range(5, 10)), "dev": (["nicolas"], range(5, 7))}
    for name, (speakers, takes) in sets.items():
        write_fsdd_data_dir(base / "data" / name, fsdd_recordings, speakers, takes)
        for job in (1, 2):
            run_script(
                ROOT / "workflow/scripts/make_features.py",
                base / "data" / name,
                base / "fbank" / name,
                "--job",
                job,
                "--nj",
                2,
                "--config",
                config,
            )
        run_script(ROOT / "workflow/scripts/gather_features.py", base / "data" / name, base / "fbank" / name, "--nj", 2)
    run_script(
        ROOT / "workflow/scripts/train_tokenizer.py",
        base / "data/train/text",
        base / "tokens/sp.model",
        "--type",
        "unigram",
        "--vocab-size",
        20,
    )
    return base


@pytest.fixture(scope="session")
def streaming_exp(fsdd_features, tmp_path_factory):
    """A tiny streaming model (unidirectional LSTM, online CMVN) trained on fsdd_features, as test_transcribe's."""
    from test_transcribe import train_tiny_model

    model = {"hidden": 64, "layers": 2, "bidirectional": False, "subsampling": "stack", "subsampling_factor": 3}
    return train_tiny_model(fsdd_features, tmp_path_factory.mktemp("stream_exp"), "online", model)
