"""Config: unknown keys, wrong types and out-of-range values are rejected by the schema with the key's name,
before anything runs; no config value reaches a shell unquoted."""

import pytest
import soundfile
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from speechrecipe.config import ConfigError
from speechrecipe.schema import check_config, load_schema

from .lib import ROOT, deep_merge, quoted_everywhere, shell_commands, snakemake, write_config

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
DEFAULTS = yaml.safe_load((ROOT / "config.yaml").read_text())

REJECTED = {
    "unknown top-level key": ({"tga": "x"}, "tga"),
    "unknown nested key": ({"am": {"train": {"lr_peak": 0.1}}}, "lr_peak"),
    "unknown key in features": ({"features": {"num_mel": 40}}, "num_mel"),
    "wrong type: string for integer": ({"am": {"model": {"hidden": "big"}}}, "hidden"),
    "wrong type: string number": ({"features": {"nj": "2"}}, "nj"),
    "wrong type: list for string": ({"train_set": ["train"]}, "train_set"),
    "wrong type: number for boolean": ({"decode": {"use_lm": 1}}, "use_lm"),
    "out of range: zero jobs": ({"features": {"nj": 0}}, "nj"),
    "out of range: learning rate": ({"am": {"train": {"lr": 5}}}, "lr"),
    "out of range: sample rate": ({"features": {"sample_rate": 1000}}, "sample_rate"),
    "out of range: speed factor": ({"features": {"speed_perturb": [0.2]}}, "speed_perturb"),
    "not one of the choices": ({"tokens": {"type": "word"}}, "type"),
    "tag not a plain name": ({"tag": "../elsewhere"}, "tag"),
}


@pytest.mark.parametrize("override,key", REJECTED.values(), ids=REJECTED.keys())
def test_the_schema_rejects_it_naming_the_key(override, key):
    with pytest.raises(WorkflowError) as info:
        validate(deep_merge(DEFAULTS, override), str(SCHEMA))
    assert f"['{key}']" in str(info.value) or f"'{key}'" in str(info.value), str(info.value)


def test_the_default_config_and_every_corpus_config_are_valid():
    for path in [None, *sorted((ROOT / "conf").rglob("*.yaml"))]:
        validate(deep_merge(DEFAULTS, yaml.safe_load(path.read_text()) if path else {}), str(SCHEMA))


def test_snakemake_stops_on_a_bad_config_before_anything_runs(tmp_path):
    write_config(tmp_path, {"am": {"model": {"hidden": "big"}}})
    result = snakemake(tmp_path, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "am.model.hidden is 'big': it must be a number or 'auto' (LSTM units per direction, or auto" in output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["config.yaml"]


def check(override: dict) -> str:
    """check_config's message for the default config with ``override``."""
    config = deep_merge(DEFAULTS, override)
    with pytest.raises(ConfigError) as info:
        check_config(config, load_schema(SCHEMA))
    return str(info.value)


def test_a_bad_key_is_reported_in_a_few_lines_with_its_path_and_the_closest_valid_key():
    message = check({"epochs": 5})
    assert "unknown config key 'epochs'" in message and "valid keys: am, corpus" in message
    assert len(message.splitlines()) <= 5
    message = check({"am": {"train": {"max_epoch": 8}}})
    assert "unknown config key 'am.train.max_epoch': did you mean 'max_epochs'?" in message
    assert "valid keys of am.train: average_best, batch_frames" in message and len(message.splitlines()) <= 5
    message = check({"am": {"cmvn": "spekaer"}})
    assert (
        "am.cmvn is 'spekaer': allowed values are global, speaker, utterance, online, none; did you mean 'speaker'?"
        in message
    )
    message = check({"features": {"nj": 0}, "am": {"train": {"lr": "fast"}}})
    assert "features.nj is 0: 0 is less than the minimum of 1" in message
    assert "am.train.lr is 'fast' (str); it must be of type number" in message


def test_nested_command_line_overrides_keep_their_types(tmp_path):
    """Snakemake passes nested --config values as strings ('8'): they get the schema's types."""
    write_config(tmp_path, {"tag": "typed"})
    result = snakemake(
        tmp_path,
        "-n",
        "--config",
        'am={"train": {"max_epochs": 8, "lr": 0.01}, "use_gpu": "false"}',
        'decode={"use_lm": "false", "beam_size": 4}',
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = deep_merge(
        DEFAULTS,
        {
            "am": {
                "train": {"max_epochs": "8", "lr": "0.01", "specaug": {"time_width": "0.1"}},
                "max_frames": "null",
                "use_gpu": "false",
            },
            "features": {"speed_perturb": ["0.9", "1.1"]},
        },
    )
    check_config(config, load_schema(SCHEMA))
    assert config["am"]["train"]["max_epochs"] == 8 and config["am"]["train"]["lr"] == 0.01
    assert config["am"]["train"]["specaug"]["time_width"] == 0.1 and config["am"]["max_frames"] is None
    assert config["am"]["use_gpu"] is False and config["features"]["speed_perturb"] == [0.9, 1.1]
    assert config["tag"] == "synth_digits_blstm"  # strings stay strings


# A value with a space and a quote: split by the shell unless it is quoted.
ODD = "o'k dir"


def odd_inputs(tmp_path):
    """Files that must exist for the DAG to be built with the odd paths of the cases below."""
    folder = tmp_path / ODD
    (folder / "fbank").mkdir(parents=True)
    (folder / "final.pt").write_bytes(b"")
    (folder / "fbank/feats.scp").write_text("")
    noise = folder / "noise"
    noise.mkdir()
    soundfile.write(noise / "hum.wav", [0.0] * 1600, 16000)
    return folder


# config key -> (override, where the odd value ends up)
SHELL_VALUES = {
    "corpus_dir": lambda d: {"corpus": "fsdd", "corpus_dir": str(d / "fsdd")},
    "prepare": lambda d: {"corpus": "fsdd", "corpus_dir": "/x", "prepare": {"dev_speakers": [ODD]}},
    "kaldi_dirs": lambda d: {"corpus": "kaldi", "kaldi_dirs": {s: str(d / s) for s in ("train", "dev", "test")}},
    "test_sets (path)": lambda d: {"test_sets": {"extra": str(d / "extra")}},
    "am.init": lambda d: {"am": {"init": str(d / "final.pt")}},
    "am.extra_train": lambda d: {"am": {"extra_train": [str(d / "fbank")]}},
    "noise.noise_dirs": lambda d: {"am": {"init": "dae"}, "noise": {"noise_dirs": [str(d / "noise")]}},
}
# Names that become file names in every stage's command: the schema restricts them (letters, digits, _ . -).
SHELL_NAMES = {
    "data_dir": lambda d: {"data_dir": f"data/{ODD}"},
    "train_set": lambda d: {"train_set": ODD},
    "dev_set": lambda d: {"dev_set": ODD, "eval_sets": [ODD, "test"]},
    "eval_sets": lambda d: {"eval_sets": ["dev", ODD]},
    "test_sets (name)": lambda d: {"test_sets": {ODD: str(d / "extra")}},
}
CASES = [pytest.param(k, v, id=k) for k, v in {**SHELL_VALUES, **SHELL_NAMES}.items()]


@pytest.mark.parametrize("key,override", CASES)
def test_no_config_value_reaches_a_shell_unquoted(key, override, tmp_path):
    workdir = tmp_path / "run"
    write_config(workdir, override(odd_inputs(tmp_path)))
    result = snakemake(workdir, "-n", "-p", check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:  # rejected before anything runs: acceptable if the key is named
        assert key.split(" ")[0].split(".")[-1] in output, output[-3000:]
        return
    ok, where = quoted_everywhere(shell_commands(output), ODD)
    assert ok, f"{key}: {where}"
