"""The recipe's configuration as typed, strict dataclasses: one source for scripts and rule files.

This module imports nothing heavier than the standard library, so that the rule files
(``workflow/rules/*.smk``) can use it while Snakemake builds the DAG, and the stage scripts
can use it before they import torch.

- ``workflow/schemas/config.schema.yaml`` documents every key; the dataclasses here have the
  same defaults (``tests/test_config.py`` checks that they agree).
- :meth:`Section.from_dict` is strict: an unknown key raises :class:`ConfigError` naming the
  key, where it is, and the closest valid key, so a script run by hand with a typo never
  trains with a default instead.
- What identifies a training run (resume is allowed only from checkpoints of the same one)
  is said in one place, :meth:`TrainConfig.identity` and :func:`run_hash`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, get_type_hints

CMVN_MODES = ("global", "speaker", "utterance", "online", "none")
FEATURE_TYPES = ("fbank", "mfcc")
SUBSAMPLING_TYPES = ("stack", "conv2d", "none")
GENERATED_NOISE_TYPES = ("white", "pink", "babble")


class ConfigError(ValueError):
    """A config section has a key the recipe does not know, or a value of the wrong kind."""


def closest(key: str, valid) -> str | None:
    """The valid key most like ``key`` (a typo's likely meaning), or None."""
    found = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return found[0] if found else None


def unknown_key_message(key: str, path: str, valid) -> str:
    """What a person needs to fix an unknown key: where it is, what it probably meant, what exists."""
    where = f"{path}.{key}" if path else key
    guess = closest(key, valid)
    lines = [f"unknown config key '{where}'" + (f": did you mean '{guess}'?" if guess else "")]
    lines.append(f"valid keys{' of ' + path if path else ''}: {', '.join(sorted(valid))}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Section:
    """A config section: built from a dict by :meth:`from_dict`, written back by :meth:`to_dict`."""

    @classmethod
    def from_dict(cls, values: dict | None, path: str = ""):
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in names:
                raise ConfigError(unknown_key_message(key, path, names))
        hints = get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            kind = hints[key]
            if isinstance(kind, type) and issubclass(kind, Section):
                value = value if isinstance(value, kind) else kind.from_dict(value, f"{path}.{key}" if path else key)
            kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# --- features ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureConfig(Section):
    """What a feature vector is; stored with every model so that decoding computes the same thing."""

    type: str = "fbank"
    num_mel_bins: int = 80
    num_ceps: int = 13  # mfcc only
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0

    @property
    def dim(self) -> int:
        return self.num_mel_bins if self.type == "fbank" else self.num_ceps


@dataclass(frozen=True)
class FeaturesConfig(FeatureConfig):
    """Config section ``features``: the feature config, plus how the stage runs (jobs, speed perturbation)."""

    nj: int = 2
    speed_perturb: list = field(default_factory=list)

    def feature_config(self) -> FeatureConfig:
        """The part that says what a feature vector is (the rest does not change any feature's value)."""
        return FeatureConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(FeatureConfig)})


@dataclass(frozen=True)
class TokensConfig(Section):
    type: str = "unigram"
    vocab_size: int = 64


# --- models ------------------------------------------------------------------------------------------------------


# The model's size where am.model.hidden or layers is "auto": from the hours of the training set (as prepared,
# before speed perturbation or noisy copies), up to the first bound that is larger. The rows are the sizes the
# corpora of this machine were tuned with (2x128 for the 0.2-hour digit corpora, 3x256 for LJ Speech's 0.5 h) and
# conf/librispeech.yaml's for 100 h and more on GPUs (not measured here); the 0.3 h bound lies between them. Under
# the generic schedule, 3x256 and 2x128 ended at the same CER on LJ Speech (RESULTS.md, "A corpus of your own"),
# so the rule rests on the tuned configs, not on a gain measured with it.
MODEL_SIZE_BY_HOURS = ((0.3, 128, 2), (10.0, 256, 3), (float("inf"), 512, 4))


def model_size_for(hours: float) -> tuple[int, int]:
    """(hidden units per direction, LSTM layers) for a training set of ``hours``."""
    return next((hidden, layers) for bound, hidden, layers in MODEL_SIZE_BY_HOURS if hours < bound)


@dataclass(frozen=True)
class ModelConfig(Section):
    """The acoustic model's shape. ``input_dim`` and ``vocab_size`` come from the data, not from config."""

    input_dim: int = 80
    vocab_size: int = 64
    hidden: int | str = 256  # units per direction, or "auto" (model_size_for the training hours)
    layers: int | str = 3  # or "auto"
    bidirectional: bool = True
    subsampling: str = "stack"  # stack | conv2d | none
    subsampling_factor: int = 3  # stack: frames concatenated per output frame; conv2d: 2 or 4
    dropout: float = 0.2

    DERIVED: ClassVar[tuple[str, ...]] = ("input_dim", "vocab_size")

    def settings(self) -> dict:
        """The keys a config sets (section am.model): all but those that come from the data."""
        return {k: v for k, v in self.to_dict().items() if k not in self.DERIVED}

    @property
    def sized(self) -> bool:
        """Whether hidden and layers are numbers (no "auto" left)."""
        return self.hidden != "auto" and self.layers != "auto"

    def sized_for(self, hours: float) -> ModelConfig:
        """This config with "auto" sizes chosen for a training set of ``hours`` (model_size_for)."""
        hidden, layers = model_size_for(hours)
        return self.replace(
            hidden=hidden if self.hidden == "auto" else self.hidden,
            layers=layers if self.layers == "auto" else self.layers,
        )


# --- training ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecAugmentConfig(Section):
    freq_masks: int = 2
    freq_width: int | None = None  # None: 3/16 of the feature dimension (15 of 80 bins, 4 of 23, 2 of 13)
    time_masks: int = 2
    time_width: float = 0.05

    @property
    def enabled(self) -> bool:
        return bool(self.freq_masks or self.time_masks)


@dataclass(frozen=True)
class ConcatConfig(Section):
    """Length generalization: training examples made of several utterances of one speaker, joined with
    short pauses (speechrecipe.ctc_task), so that a corpus of short utterances does not teach the model
    that an utterance holds one word."""

    mode: str = "auto"  # on | off | auto: on when the median training utterance is shorter than auto_below_seconds
    probability: float = 0.5  # of an utterance starting a joined example
    max_utterances: int = 5
    max_frames: int = 1500  # a joined example is at most this long
    pause_ms: list = field(default_factory=lambda: [50, 250])  # a pause's shortest and longest
    auto_below_seconds: float = 1.5

    def resolved(self, median_seconds: float) -> ConcatConfig:
        """This config with ``mode: auto`` decided for a training set whose median utterance lasts
        ``median_seconds``: ``probability`` 0 when joining is off."""
        on = self.mode == "on" or (self.mode == "auto" and median_seconds < self.auto_below_seconds)
        return self.replace(mode="on" if on else "off", probability=self.probability if on else 0.0)


@dataclass(frozen=True)
class TrainConfig(Section):
    """How a model is trained (the acoustic model's defaults; :class:`DAETrainConfig` has the DAE's).

    The schedule is counted in optimizer steps, not epochs, so that it means the same on a corpus of
    two batches and on one of ten thousand: warm-up, the dev checks, early stopping and the
    minimum length of a run are all in steps.
    """

    max_epochs: int = 30  # upper bound, unless min_steps needs more
    min_steps: int = 0  # a run lasts at least this many steps (a small corpus gets more epochs)
    batch_frames: int = 20000  # padded input frames per batch
    max_batch: int = 128
    min_batches_per_epoch: int = 1  # smaller batches for a small corpus, so an epoch still holds this many steps
    lr: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-2
    grad_clip: float = 5.0
    check_every_steps: int = 0  # dev checks at the end of an epoch, at least this many steps apart (0: every epoch)
    patience_steps: int = 0  # stop when the best check is this many steps behind (0: never)
    average_best: int = 3
    max_bad_batches: int = 10  # non-finite losses tolerated per epoch before training stops
    checkpoint_every_steps: int = 0  # a resume point inside an epoch every so many steps (0: by time only)
    checkpoint_every_minutes: float = 30.0  # ... and every so many minutes (0: never inside an epoch)
    seed: int = 1  # the recipe's top-level seed, passed in by the rule

    # What identifies a training run is every key but these: they only say how long to train, how
    # to finish or when to save, so changing them continues from the existing checkpoints instead of
    # starting over (ESPnet #5601).
    NOT_IDENTIFYING: ClassVar[tuple[str, ...]] = (
        "max_epochs",
        "min_steps",
        "check_every_steps",
        "patience_steps",
        "average_best",
        "max_bad_batches",
        "checkpoint_every_steps",
        "checkpoint_every_minutes",
        "select_by",
    )
    # Keys added after checkpoints already existed: left out of the identity (and of the rule's
    # params) at these values, so that those checkpoints stay resumable and those runs are not redone.
    IDENTIFYING_UNLESS: ClassVar[dict[str, Any]] = {"freeze_steps": 0}

    def identity(self) -> dict:
        """What identifies the training run (resume continues only a run of the same identity)."""
        return {k: v for k, v in self.params().items() if k not in self.NOT_IDENTIFYING}

    def params(self) -> dict:
        """The config as the training rule's params: all of it, less keys at their IDENTIFYING_UNLESS value."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if not (k in self.IDENTIFYING_UNLESS and self.IDENTIFYING_UNLESS[k] == v)
        }


@dataclass(frozen=True)
class OnTheFlyConfig(Section):
    """Speed perturbation and noise made from the audio when a training batch is made
    (speechrecipe.onthefly), instead of copies on disk (features.speed_perturb, am.multi_condition):
    each utterance gets, each epoch, a speed factor and maybe a noise drawn from (seed, epoch, utterance)."""

    speed_perturb: list = field(default_factory=list)  # factors to draw from, as features.speed_perturb; empty: none
    noise_dirs: list = field(default_factory=list)  # noise folders or files, as noise.noise_dirs; empty: none
    snrs: list = field(default_factory=lambda: [0, 5, 10, 20])  # dB, as noise.train_snrs
    noise_probability: float = 0.5  # of an utterance being mixed with noise in an epoch (the rest stay clean)

    @property
    def enabled(self) -> bool:
        return bool(self.speed_perturb or self.noise_dirs)


@dataclass(frozen=True)
class AMTrainConfig(TrainConfig):
    """Section ``am.train``: the common training keys plus what only the acoustic model has."""

    # What picks the best checks for early stopping and averaging: the dev CTC loss, or the dev
    # greedy token error rate (ties broken by dev loss). On unseen speakers the dev loss of a CTC
    # model often rises (over-confident wrong frames) while its error rate still falls.
    select_by: str = "loss"
    # Steps during which the weights copied by am.init are not updated, so that the randomly
    # initialized layers above them settle first.
    freeze_steps: int = 0
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    concat: ConcatConfig = field(default_factory=ConcatConfig)
    onthefly: OnTheFlyConfig = field(default_factory=OnTheFlyConfig)

    # onthefly came later: off, it is left out of the identity, so that existing runs stay resumable.
    IDENTIFYING_UNLESS: ClassVar[dict[str, Any]] = {
        **TrainConfig.IDENTIFYING_UNLESS,
        "onthefly": OnTheFlyConfig().to_dict(),
    }


@dataclass(frozen=True)
class DAETrainConfig(TrainConfig):
    """Section ``dae.train``: the common training keys with the denoising autoencoder's defaults."""

    max_epochs: int = 10
    batch_frames: int = 4000
    warmup_steps: int = 100
    average_best: int = 2


def config_hash(value: dict) -> str:
    """A short stable hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def run_hash(train: TrainConfig, **what) -> str:
    """The identity of a training run: ``train``'s identity plus what else decides the run (model,
    data, tokenizer...). Checkpoints record it; a run resumes only from checkpoints with the same."""
    return config_hash({**what, "train": train.identity()})


# --- sections of the recipe --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AMConfig(Section):
    init: str = "random"
    extra_train: list = field(default_factory=list)
    multi_condition: bool = False
    cmvn: str = "global"
    max_frames: int | None = 3000
    threads: int = 2
    use_gpu: bool | str = "auto"
    num_gpus: int = 1
    num_nodes: int = 1
    mem_mb: int = 6000
    runtime: int = 1440
    in_memory: bool = False
    loader_workers: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    train: AMTrainConfig = field(default_factory=AMTrainConfig)


@dataclass(frozen=True)
class DAEConfig(Section):
    layers: int = 1
    threads: int = 2
    use_gpu: bool | str = "auto"
    mem_mb: int = 6000
    runtime: int = 720
    in_memory: bool = False
    loader_workers: int = 1
    # The noisy inputs mixed from the clean sets' audio as batches are made (speechrecipe.onthefly.MixedPairs),
    # with the training noise, instead of read from the noise stage's copies on disk.
    onthefly: bool = False
    # Untranscribed audio the DAE also learns from (speechrecipe.audio_sources), mixed on the fly.
    extra_audio: list = field(default_factory=list)
    # Greedy layer-wise pretraining of a DAE of several layers: one layer at a time, those below kept fixed.
    layerwise: bool = False
    train: DAETrainConfig = field(default_factory=DAETrainConfig)


@dataclass(frozen=True)
class NoiseConfig(Section):
    noise_dirs: list = field(default_factory=list)
    test_noise_dirs: dict = field(default_factory=dict)
    train_snrs: list = field(default_factory=lambda: [0, 5, 10, 20])
    test_snrs: list = field(default_factory=list)
    sets: list | None = None
    generated_seconds: float = 60


@dataclass(frozen=True)
class LMConfig(Section):
    order: int = 3
    weights: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    word_insertion_penalty: float = 0.0


@dataclass(frozen=True)
class DecodeConfig(Section):
    method: str = "beam"
    beam_size: int = 10
    enhance: bool = False
    use_lm: bool = False
    lm: LMConfig = field(default_factory=LMConfig)

    def search(self) -> dict:
        """The search settings alone (method, beam_size): what decoding without LM or DAE depends on."""
        return {"method": self.method, "beam_size": self.beam_size}


@dataclass(frozen=True)
class RecipeConfig(Section):
    """The whole config (``config.yaml`` plus ``--configfile`` and ``--config`` overrides)."""

    corpus: str = "synth_digits"
    corpus_dir: str | None = None
    data_dir: str | None = None
    kaldi_dirs: dict = field(default_factory=dict)
    tag: str = "synth_digits_blstm"
    seed: int = 1
    prepare: dict = field(default_factory=dict)
    train_set: str = "train"
    dev_set: str = "dev"
    eval_sets: list = field(default_factory=lambda: ["dev", "test"])
    test_sets: dict = field(default_factory=dict)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    am: AMConfig = field(default_factory=AMConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    dae: DAEConfig = field(default_factory=DAEConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def dae_used(self) -> bool:
        """Whether the experiment trains a denoising autoencoder: its encoder starts the acoustic model
        (am.init: dae) or it enhances features before decoding (decode.enhance)."""
        return self.am.init == "dae" or self.decode.enhance


# --- noisy copies of data sets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoisySet:
    """A noisy copy of a data set: which clean set, which noise condition, which SNRs, from which sources."""

    base: str
    noise: str  # the condition's name ('train' for the noisy training copies)
    snr: float | None  # one SNR for a test copy; None for a training copy (several SNRs)
    snrs: tuple
    sources: tuple  # noise files or folders; generated noise as the path make_noise writes

    @property
    def is_test(self) -> bool:
        return self.snr is not None


def snr_name(snr: float) -> str:
    """An SNR as part of a set name: 5 -> '5dB', -5 -> 'm5dB', 2.5 -> '2.5dB'."""
    return f"{snr:g}".replace("-", "m") + "dB"


def noise_sources(entries, generated_dir: str) -> tuple:
    """Noise entries of config as paths: ``generated:TYPE`` becomes the file make_noise writes."""
    return tuple(f"{generated_dir}/{e.split(':', 1)[1]}.wav" if str(e).startswith("generated:") else e for e in entries)


def noisy_sets(config: RecipeConfig, eval_sets: list[str], generated_dir: str) -> dict[str, NoisySet]:
    """Every noisy copy an experiment needs, by set name.

    Test copies ``<set>_<noise>_<snr>dB``: every set of ``noise.sets`` (default: the eval sets but
    the dev set) x each test noise condition (``noise.test_noise_dirs``; default one condition,
    'noise', of ``noise.noise_dirs``) x each of ``noise.test_snrs``. Training copies
    ``<train_set>_noisy`` and ``<dev_set>_noisy`` (at ``noise.train_snrs``) when multi-condition
    training or the DAE (unless ``dae.onthefly``) needs them. Empty noise folders mean generated white, pink and babble noise.
    """
    noise = config.noise
    training_noise = noise.noise_dirs or [f"generated:{kind}" for kind in GENERATED_NOISE_TYPES]
    conditions = noise.test_noise_dirs or {"noise": training_noise}
    bases = noise.sets if noise.sets is not None else [s for s in eval_sets if s != config.dev_set]
    sets = {}
    for base in bases:
        for name, entries in conditions.items():
            for snr in noise.test_snrs:
                sets[f"{base}_{name}_{snr_name(snr)}"] = NoisySet(
                    base, name, snr, (snr,), noise_sources(entries, generated_dir)
                )
    if config.am.multi_condition or (config.dae_used and not config.dae.onthefly):
        for base in (config.train_set, config.dev_set):
            sets[f"{base}_noisy"] = NoisySet(
                base, "train", None, tuple(noise.train_snrs), training_noise_sources(config, generated_dir)
            )
    return sets


def training_noise_sources(config: RecipeConfig, generated_dir: str) -> tuple[str, ...]:
    """The noise files or folders training mixes in (``noise.noise_dirs``; empty: generated white, pink and
    babble noise, the files make_noise writes under ``generated_dir``)."""
    return noise_sources(
        config.noise.noise_dirs or [f"generated:{kind}" for kind in GENERATED_NOISE_TYPES], generated_dir
    )
