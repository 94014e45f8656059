"""The config module: one source of defaults (the schema and the dataclasses agree), strict sections, one
place that says which keys identify a training run, and the table of noisy sets."""

import dataclasses

import pytest
import yaml

from conftest import ROOT
from speechrecipe import config as cfg

SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def walk(schema: dict, section: type, path: str = ""):
    """(path, schema property, dataclass field or None) of every key of a schema object and its dataclass."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    for name, prop in schema["properties"].items():
        field = fields.get(name)
        yield f"{path}{name}", prop, field
        if "properties" in prop and field is not None and field.default_factory is not dataclasses.MISSING:
            nested = field.default_factory()
            if isinstance(nested, cfg.Section):
                yield from walk(prop, type(nested), f"{path}{name}.")


def default_of(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        return value.to_dict() if isinstance(value, cfg.Section) else value
    return field.default


def test_the_schema_documents_every_key_of_the_dataclasses_and_nothing_else():
    documented = {path for path, _, _ in walk(SCHEMA, cfg.RecipeConfig)}
    missing_in_dataclass = [path for path, _, field in walk(SCHEMA, cfg.RecipeConfig) if field is None]
    assert missing_in_dataclass == []

    def dataclass_keys(section, path=""):
        for field in dataclasses.fields(section):
            if field.name in getattr(section, "DERIVED", ()) or (field.name == "seed" and path.endswith("train.")):
                continue  # from the data, or the top-level seed passed in by the rule
            yield f"{path}{field.name}"
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
            if isinstance(default, cfg.Section):
                yield from dataclass_keys(type(default), f"{path}{field.name}.")

    assert sorted(set(dataclass_keys(cfg.RecipeConfig)) - documented) == []


def test_the_schema_defaults_equal_the_dataclass_defaults():
    checked = 0
    for path, prop, field in walk(SCHEMA, cfg.RecipeConfig):
        assert prop.get("description") or "properties" in prop, f"{path} has no description"
        if "default" in prop and not (isinstance(prop["default"], dict) and "properties" in prop):
            assert prop["default"] == default_of(field), (
                f"{path}: schema {prop['default']!r}, dataclass {default_of(field)!r}"
            )
            checked += 1
    assert checked > 60


def test_enumerations_are_listed_once():
    am = SCHEMA["properties"]["am"]["properties"]
    assert tuple(am["cmvn"]["enum"]) == cfg.CMVN_MODES
    assert tuple(SCHEMA["properties"]["features"]["properties"]["type"]["enum"]) == cfg.FEATURE_TYPES
    assert tuple(am["model"]["properties"]["subsampling"]["enum"]) == cfg.SUBSAMPLING_TYPES


def test_an_unknown_key_is_refused_with_its_path_and_the_closest_valid_key():
    with pytest.raises(cfg.ConfigError) as info:
        cfg.AMTrainConfig.from_dict({"max_epoch": 5}, "am.train")
    message = str(info.value)
    assert "unknown config key 'am.train.max_epoch'" in message and "did you mean 'max_epochs'" in message
    assert "valid keys of am.train:" in message and "warmup_steps" in message
    with pytest.raises(cfg.ConfigError, match=r"'am\.train\.specaug\.freq_mask'.*'freq_masks'"):
        cfg.RecipeConfig.from_dict({"am": {"train": {"specaug": {"freq_mask": 1}}}})
    with pytest.raises(cfg.ConfigError, match="unknown config key 'epochs'"):
        cfg.RecipeConfig.from_dict({"epochs": 5})


def test_sections_fill_defaults_and_nest():
    recipe = cfg.RecipeConfig.from_dict({"am": {"train": {"lr": 0.01, "specaug": {"time_masks": 0}}}})
    assert recipe.am.train.lr == 0.01 and recipe.am.train.max_epochs == 30
    assert recipe.am.train.specaug == cfg.SpecAugmentConfig(time_masks=0)
    assert recipe.dae.train.max_epochs == 10 and recipe.dae.train.lr == 0.001  # the DAE's own defaults
    assert recipe.features.feature_config() == cfg.FeatureConfig()
    assert "nj" not in recipe.features.feature_config().to_dict()


def test_which_keys_identify_a_training_run():
    base = cfg.AMTrainConfig()
    same = {"model": {"hidden": 8}}
    # How long to train and how to finish: not the run's identity (raising max_epochs continues).
    not_identifying = (
        ("max_epochs", 99),
        ("min_steps", 5000),
        ("patience_steps", 100),
        ("average_best", 9),
        ("select_by", "ter"),
        ("check_every_steps", 50),
        ("checkpoint_every_minutes", 1.0),
    )
    for key, value in not_identifying:
        assert cfg.run_hash(base.replace(**{key: value}), **same) == cfg.run_hash(base, **same), key
    for key, value in (
        ("lr", 0.5),
        ("batch_frames", 123),
        ("seed", 7),
        ("freeze_steps", 2),
        ("min_batches_per_epoch", 9),
    ):
        assert cfg.run_hash(base.replace(**{key: value}), **same) != cfg.run_hash(base, **same), key
    assert cfg.run_hash(base, model={"hidden": 9}) != cfg.run_hash(base, **same)
    # freeze_steps came later: at 0 it is neither in the identity nor in the rule's params.
    assert "freeze_steps" not in base.identity() and "freeze_steps" not in base.params()
    assert base.replace(freeze_steps=1).params()["freeze_steps"] == 1
    # The DAE's training config is the same kind of thing, with the DAE's defaults.
    assert set(cfg.DAETrainConfig().identity()) == set(base.identity()) - {"specaug", "concat"}


def test_noisy_sets_of_an_experiment():
    recipe = cfg.RecipeConfig.from_dict(
        {
            "eval_sets": ["dev", "test"],
            "noise": {"test_snrs": [5, -5], "test_noise_dirs": {"sc": ["/noise"], "babble": ["generated:babble"]}},
        }
    )
    sets = cfg.noisy_sets(recipe, ["dev", "test"], "data/x/noise_generated")
    assert list(sets) == ["test_sc_5dB", "test_sc_m5dB", "test_babble_5dB", "test_babble_m5dB"]
    assert sets["test_babble_m5dB"] == cfg.NoisySet("test", "babble", -5, (-5,), ("data/x/noise_generated/babble.wav",))
    assert all(s.is_test for s in sets.values())
    # Multi-condition training (or a DAE) adds the noisy copies of the training and dev sets.
    trained = recipe.replace(am=recipe.am.replace(multi_condition=True))
    copies = {name: s for name, s in cfg.noisy_sets(trained, ["dev", "test"], "g").items() if not s.is_test}
    assert list(copies) == ["train_noisy", "dev_noisy"]
    assert copies["train_noisy"].snrs == (0, 5, 10, 20)
    assert copies["train_noisy"].sources == ("g/white.wav", "g/pink.wav", "g/babble.wav")  # no noise_dirs: generated
    # noise.sets names the clean sets explicitly; nothing at all without test SNRs or noisy training.
    chosen = recipe.replace(noise=recipe.noise.replace(sets=["dev"]))
    assert {s.base for s in cfg.noisy_sets(chosen, ["dev", "test"], "g").values()} == {"dev"}
    assert cfg.noisy_sets(cfg.RecipeConfig(), ["dev", "test"], "g") == {}
    assert cfg.snr_name(2.5) == "2.5dB"


def test_auto_model_sizes_follow_the_training_hours(tmp_path):
    from speechrecipe.config import ModelConfig, model_size_for
    from speechrecipe.model.network import sized_for_data

    assert model_size_for(0.015) == model_size_for(0.29) == (128, 2)
    assert model_size_for(0.3) == model_size_for(0.5) == (256, 3)
    assert model_size_for(100.0) == (512, 4)
    auto = ModelConfig(hidden="auto", layers="auto")
    assert not auto.sized and auto.sized_for(0.5).sized
    assert ModelConfig(hidden=64, layers="auto").sized_for(0.5) == ModelConfig(hidden=64, layers=3)
    # Hours from a data directory's utt2dur, else from a feature directory's frame counts.
    (tmp_path / "data").mkdir()
    (tmp_path / "data/utt2dur").write_text("a 900.0\nb 180.0\n")  # 0.3 h
    assert sized_for_data(auto, tmp_path / "data") == ModelConfig(hidden=256, layers=3)
    (tmp_path / "feats").mkdir()
    (tmp_path / "feats/utt2num_frames").write_text("a 36000\n")  # 360 s at 10 ms
    assert sized_for_data(auto, tmp_path / "feats") == ModelConfig(hidden=128, layers=2)
    with pytest.raises(FileNotFoundError, match="hours are unknown"):
        sized_for_data(auto, tmp_path)


def test_the_schema_takes_auto_model_sizes_and_nothing_else_in_words():
    from speechrecipe.schema import check_config, load_schema

    check_config({"am": {"model": {"hidden": "auto", "layers": "auto"}}}, load_schema(str(SCHEMA_PATH)))
    with pytest.raises(Exception, match="am.model.hidden"):
        check_config({"am": {"model": {"hidden": "big"}}}, load_schema(str(SCHEMA_PATH)))
    # from the command line, where Snakemake passes nested values as strings, a number is still a number
    config = {"am": {"model": {"hidden": "192", "layers": "auto"}}}
    check_config(config, load_schema(str(SCHEMA_PATH)))
    assert config["am"]["model"] == {"hidden": 192, "layers": "auto"}
