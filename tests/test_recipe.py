"""The whole DAG through Snakemake's command line, on a tiny synthetic corpus, in a scratch directory."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_CORPUS, snakemake_on

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TINY = {
    "tag": "tiny",
    "prepare": TINY_CORPUS,
    # no speed copies and no step minimum: the generic config's (config.yaml) would make these tests minutes long
    "features": {"nj": 2, "speed_perturb": []},
    "tokens": {"vocab_size": 20},
    "am": {
        "model": {"hidden": 16, "layers": 1},
        "train": {"max_epochs": 2, "min_steps": 0, "check_every_steps": 0, "batch_frames": 2000, "warmup_steps": 5},
        "threads": 1,
    },
    "decode": {"beam_size": 2},
}


def snakemake(workdir: Path, *configs: dict, args=(), check=True) -> subprocess.CompletedProcess:
    files = []
    for i, config in enumerate(configs):
        files.append(workdir / f"override{i}.yaml")
        files[-1].write_text(yaml.safe_dump(config))
    cmd = [
        *snakemake_on(workdir),
        "--cores",
        "2",
        "--configfile",
        *map(str, files),
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, flags=re.MULTILINE)) - {"all"}


def write_extra_test_set(folder: Path) -> Path:
    """A Kaldi data dir of our own (3 synthesized utterances), added through config test_sets."""
    from speechrecipe.audio import write_wav
    from speechrecipe.datadir import DataDir
    from speechrecipe.synth import sample_rate, synthesize

    data = DataDir()
    for i, text in enumerate(["ONE TWO", "NINE", "THREE FOUR FIVE"]):
        utt = f"extra-{i}"
        samples = synthesize(text.lower(), voice="en-us", rate=160, pitch=50)
        write_wav(folder / f"{utt}.wav", samples, sample_rate())
        data.wav_scp[utt], data.text[utt], data.utt2spk[utt] = str(folder / f"{utt}.wav"), text, "extra"
        data.utt2dur[utt] = len(samples) / sample_rate()
    data.save(folder)
    return folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recipe")
    TINY["test_sets"] = {"extra": str(write_extra_test_set(workdir / "my_kaldi_dir"))}
    # A first run that stops early says where no results are (there are none yet) ...
    partial = snakemake(workdir, TINY, args=("--until", "validate_data"))
    assert "Done." in partial.stdout + partial.stderr and "Results:" not in partial.stdout + partial.stderr
    assert not (workdir / "exp/tiny/results.tsv").exists()
    # ... and the whole run, where they are.
    done = snakemake(workdir, TINY)
    assert "Done. Results: exp/tiny/results.tsv and exp/tiny/RESULTS.md" in done.stdout + done.stderr
    return workdir


def test_every_artifact_is_there(finished_run):
    w = finished_run
    for name in ("train", "dev", "test"):
        for f in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", "validation.txt"):
            assert (w / "data/synth_digits" / name / f).stat().st_size > 0, f"{name}/{f}"
        for f in ("feats.scp", "utt2num_frames", "cmvn.scp", "text", "utt2spk", "data/feats.1.ark", "data/feats.2.ark"):
            assert (w / "data/synth_digits/fbank" / name / f).stat().st_size > 0, f"fbank/{name}/{f}"
        assert (w / f"exp/make_fbank/synth_digits/{name}/log/make_features.1.log").exists()
    exp = w / "exp/tiny"
    for f in (
        "tokens/sp.model",
        "tokens/tokens.txt",
        "am/final.pt",
        "am/epoch-1.pt",
        "am/epoch-2.pt",
        "am/history.tsv",
        "am/log/train.log",
        "am/log/train.benchmark.tsv",
        "config.yaml",
        "results.tsv",
        "RESULTS.md",
    ):
        assert (exp / f).exists(), f
    assert len((exp / "am/history.tsv").read_text().splitlines()) == 3
    assert not list(w.rglob(".*.tmp*")), "temporary files left behind"


def test_wer_files_and_results_table(finished_run):
    exp = finished_run / "exp/tiny"
    for name in ("dev", "test"):
        wer = (exp / f"decode_{name}/wer").read_text()
        assert re.match(r"%WER \d+\.\d\d \[ \d+ / \d+, \d+ ins, \d+ del, \d+ sub \]", wer), wer
        assert (exp / f"decode_{name}/cer").read_text().startswith("%CER ")
        hyp_utts = [line.split()[0] for line in (exp / f"decode_{name}/hyp.txt").read_text().splitlines()]
        ref_utts = [
            line.split()[0] for line in (finished_run / f"data/synth_digits/{name}/text").read_text().splitlines()
        ]
        assert hyp_utts == ref_utts  # decoding never drops an utterance
        assert "#csid" in (exp / f"decode_{name}/per_utt").read_text()
    rows = (exp / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["set", "wer", "cer", "words", "ins", "del", "sub", "base", "noise", "snr"]
    assert [r.split("\t")[0] for r in rows[1:]] == ["dev", "test", "extra"]
    # The extra test set was validated, copied in, decoded and scored like the others.
    assert (finished_run / "data/synth_digits/extra/validation.txt").exists()
    assert (exp / "decode_extra/wer").read_text().startswith("%WER")
    assert "snakemake --cores 2 --configfile exp/tiny/config.yaml" in (exp / "RESULTS.md").read_text()


def test_nothing_changed_means_nothing_to_do(finished_run):
    result = snakemake(finished_run, TINY, args=["-n"])
    assert planned_rules(result) == set(), result.stdout[-2000:]


def test_changing_the_beam_reruns_only_decoding_and_scoring(finished_run):
    result = snakemake(finished_run, TINY, {"decode": {"beam_size": 3}}, args=["-n"])
    assert planned_rules(result) == {"decode", "score", "results", "experiment_config", "plots"}


def test_changing_the_model_retrains_but_keeps_the_features(finished_run):
    result = snakemake(finished_run, TINY, {"am": {"model": {"hidden": 24}}}, args=["-n"])
    planned = planned_rules(result)
    assert "train_am" in planned and "decode" in planned
    assert not planned & {"prepare_data", "validate_data", "make_features", "gather_features", "train_tokenizer"}


def test_bad_config_is_rejected_with_the_key_named(tmp_path):
    result = snakemake(tmp_path, {"am": {"modle": {"hidden": 3}}}, args=["-n"], check=False)
    assert result.returncode != 0 and "modle" in result.stdout + result.stderr
    result = snakemake(tmp_path, {"decode": {"beam_size": 0}}, args=["-n"], check=False)
    assert result.returncode != 0 and "beam_size" in result.stdout + result.stderr
