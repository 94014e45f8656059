"""The LibriSpeech recipe (conf/librispeech.yaml) end to end on a small tree in LibriSpeech's layout: real
speech (FSDD digits, re-encoded as 16 kHz FLAC under <subset>/<spk>/<chapter>/ with trans.txt files), speed
perturbation, the configured conv2d model made tiny, and job memory sized from the data."""

import re

import pytest
import soundfile
from test_recipe import snakemake

from conftest import ROOT
from speechrecipe.audio import resample
from speechrecipe.fileio import read_table
from speechrecipe.text import DIGIT_WORDS

# LibriSpeech speaker and chapter ids for FSDD's speakers: training, dev and test speakers apart.
TREE = {
    "train-clean-100": {
        "103": ("george", ["1240", "1241"]),
        "1034": ("jackson", ["121119", "121120"]),
        "1040": ("lucas", ["133433"]),
    },
    "dev-clean": {"1272": ("nicolas", ["128104"])},
    "test-clean": {"1089": ("yweweler", ["134686"])},
}


@pytest.fixture(scope="module")
def librispeech_tree(fsdd_recordings, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora") / "LibriSpeech"
    for subset, speakers in TREE.items():
        for spk, (fsdd_speaker, chapters) in speakers.items():
            for c, chapter in enumerate(chapters):
                folder = root / subset / spk / chapter
                folder.mkdir(parents=True)
                lines = []
                for n in range(10):
                    digit, take = n, 10 + 10 * c + n % 10
                    samples, rate = soundfile.read(
                        fsdd_recordings / f"{digit}_{fsdd_speaker}_{take}.wav", dtype="float32"
                    )
                    utt = f"{spk}-{chapter}-{n:04d}"
                    soundfile.write(folder / f"{utt}.flac", resample(samples, rate, 16000), 16000, subtype="PCM_16")
                    lines.append(f"{utt} {DIGIT_WORDS[digit]}\n")
                (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    return root.parent


TINY = {
    "tag": "libri_tiny",
    "features": {"nj": 2},
    "tokens": {"vocab_size": 24},
    "am": {
        "model": {"hidden": 48, "layers": 2},
        "train": {
            "max_epochs": 4,
            "min_steps": 0,
            "check_every_steps": 0,
            "batch_frames": 2000,
            "warmup_steps": 10,
            "checkpoint_every_minutes": 0,
        },
        "threads": 1,
        "loader_workers": 1,
        "use_gpu": False,
        "in_memory": True,
        "mem_mb": 100,  # below what the data needs: the job asks for what the data needs
    },
    "decode": {"beam_size": 2},
}


def test_the_librispeech_recipe_runs_on_a_tree_in_its_layout(librispeech_tree, tmp_path):
    configs = [yaml_of(ROOT / "conf/librispeech.yaml"), {**TINY, "corpus_dir": str(librispeech_tree)}]
    run = snakemake(tmp_path, *configs)
    output = run.stdout + run.stderr
    data = tmp_path / "data/librispeech"
    assert len(read_table(data / "train/text")) == 50 and set(read_table(data / "dev/utt2spk").values()) == {"1272"}
    # Speed perturbation made its three copies; the model is the configured conv2d one, made small.
    frames = read_table(data / "fbank/train_sp/utt2num_frames")
    assert len(frames) == 150 and {u.split("-")[0] for u in frames} == {"sp0.9", "sp1.1", "103", "1034", "1040"}
    # The training job asked for the memory its data needs (in_memory: the features themselves), not mem_mb.
    dev_frames = read_table(data / "fbank/dev/utt2num_frames")
    utterances = len(frames) + len(dev_frames)
    total = sum(map(int, frames.values())) + sum(map(int, dev_frames.values()))
    expected = int(max(100, 1500 + 0.0005 * utterances + 1.2 * total * 80 * 4 / 1e6))
    job = re.search(r"rule train_am:.*?resources: ([^\n]*)", output, flags=re.DOTALL).group(1)
    assert f"mem_mb={expected}" in job, job
    results = (tmp_path / "exp/libri_tiny/results.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in results[1:]] == ["dev", "test"]
    history = (tmp_path / "exp/libri_tiny/am/history.tsv").read_text().splitlines()
    assert len(history) == 5  # a check per epoch


def yaml_of(path):
    import yaml

    return yaml.safe_load(path.read_text())
