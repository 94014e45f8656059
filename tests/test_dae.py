"""Denoising-autoencoder pretraining on real FSDD audio with Speech Commands noise."""

import json

import pytest
import torch

from conftest import ROOT, SHARED_DATA, run_script

NOISE_DIR = SHARED_DATA / "noise" / "speech_commands"
FBANK = '{"type": "fbank", "num_mel_bins": 40, "sample_rate": 8000}'
AM = {"hidden": 24, "layers": 2, "bidirectional": True, "subsampling": "stack", "subsampling_factor": 3, "dropout": 0.0}


@pytest.fixture(scope="module")
def noisy_features(fsdd_features):
    """fsdd_features plus noisy copies of its train and dev sets (0-20 dB), as feature directories."""
    if not NOISE_DIR.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE_DIR}")
    base = fsdd_features
    for name in ("train", "dev"):
        if (base / "fbank" / f"{name}_noisy" / "feats.scp").exists():
            continue
        run_script(
            ROOT / "workflow/scripts/mix_noise.py",
            base / "data" / name,
            base / "data" / f"{name}_noisy",
            "--noise",
            NOISE_DIR,
            "--snrs",
            0,
            5,
            10,
            20,
            "--rate",
            8000,
            "--seed",
            1,
        )
        run_script(ROOT / "workflow/scripts/gather_noise.py", base / "data" / name, base / "data" / f"{name}_noisy")
        run_script(
            ROOT / "workflow/scripts/make_features.py",
            base / "data" / f"{name}_noisy",
            base / "fbank" / f"{name}_noisy",
            "--job",
            1,
            "--nj",
            1,
            "--config",
            FBANK,
        )
        run_script(
            ROOT / "workflow/scripts/gather_features.py",
            base / "data" / f"{name}_noisy",
            base / "fbank" / f"{name}_noisy",
            "--nj",
            1,
        )
    return base


def pairs(base, name):
    from speechrecipe.dataset import FeatureSet, PairedSet

    return PairedSet(
        FeatureSet(base / "fbank" / f"{name}_noisy", "speaker"), FeatureSet(base / "fbank" / name, "speaker")
    )


def test_dae_training_lowers_the_reconstruction_loss_and_resumes(tmp_path, noisy_features):
    from speechrecipe import checkpoint
    from speechrecipe.batching import bucket_batches
    from speechrecipe.config import DAETrainConfig, ModelConfig
    from speechrecipe.dae_task import DAETask
    from speechrecipe.model import DenoisingAutoencoder, load_dae
    from speechrecipe.trainer import train

    torch.set_num_threads(1)
    train_pairs, dev_pairs = pairs(noisy_features, "train"), pairs(noisy_features, "dev")
    assert len(train_pairs) == 100 and len(dev_pairs) == 20
    config = ModelConfig.from_dict({**AM, "input_dim": 40})
    torch.manual_seed(1)
    task = DAETask(DenoisingAutoencoder(config, layers=1), train_pairs, dev_pairs)
    dev_batches = bucket_batches(list(dev_pairs.lengths), 4000)
    before = task.dev_metrics(task.dev_sums(task.model, dev_batches, torch.device("cpu")))["dev_loss"]
    train_config = DAETrainConfig(max_epochs=2, batch_frames=1000, lr=0.005, warmup_steps=5)
    train(task, tmp_path, train_config, "h1", progress=False)
    history = (tmp_path / "history.tsv").read_text().splitlines()
    assert history[0].split("\t") == ["epoch", "step", "loss", "dev_loss", "lr", "seconds", "skipped_batches"]
    dev_losses = [float(line.split("\t")[3]) for line in history[1:]]
    assert len(dev_losses) == 2 and dev_losses[-1] < 0.9 * before
    epoch1 = (tmp_path / "epoch-1.pt").read_bytes()

    # a third epoch continues from epoch 2 (same config hash): epochs 1-2 are kept, not retrained
    task = DAETask(DenoisingAutoencoder(config, layers=1), train_pairs, dev_pairs)
    final = train(task, tmp_path, train_config.replace(max_epochs=3), "h1", progress=False)
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
    assert (tmp_path / "epoch-1.pt").read_bytes() == epoch1
    assert final["history"][2]["dev_loss"] < before
    assert checkpoint.load(tmp_path / "final.pt")["kind"] == "dae"
    # the enhancer gives clean-feature estimates at the input frame rate
    enhancer = load_dae(tmp_path / "final.pt")
    feats = torch.from_numpy(dev_pairs[0][1]).unsqueeze(0)
    assert enhancer.enhance(feats, torch.tensor([feats.shape[1]])).shape == feats.shape


def test_the_acoustic_model_starts_from_the_dae_encoder(tmp_path, noisy_features):
    """train_am.py --init <dae final.pt>: the DAE's layer is copied, and frozen during freeze_steps."""
    from speechrecipe import checkpoint

    base = noisy_features
    run_script(
        ROOT / "workflow/scripts/train_dae.py",
        base / "fbank/train_noisy",
        base / "fbank/train",
        base / "fbank/dev_noisy",
        base / "fbank/dev",
        tmp_path / "dae",
        "--model",
        json.dumps(AM),
        "--layers",
        1,
        "--train",
        '{"max_epochs": 1, "batch_frames": 4000}',
        "--features",
        FBANK,
        "--cmvn",
        "speaker",
        "--no-progress",
    )
    dae_state = checkpoint.load(tmp_path / "dae/final.pt")["model"]
    result = run_script(
        ROOT / "workflow/scripts/train_am.py",
        base / "fbank/train",
        base / "fbank/dev",
        base / "tokens/sp.model",
        tmp_path / "am",
        "--model",
        json.dumps(AM),
        "--train",
        '{"max_epochs": 1, "batch_frames": 4000, "warmup_steps": 5, "freeze_steps": 1000}',
        "--features",
        FBANK,
        "--cmvn",
        "speaker",
        "--init",
        tmp_path / "dae/final.pt",
        "--no-progress",
    )
    assert "from the DAE" in result.stderr and "frozen for the first 1000 steps" in result.stderr
    am_state = checkpoint.load(tmp_path / "am/epoch-1.pt")["model"]
    encoder = [name for name in dae_state if name.startswith("encoder.")]
    assert encoder and all(name.startswith("encoder.layers.0.") for name in encoder)
    for name in encoder:  # frozen: still exactly the DAE's weights after an epoch
        assert torch.equal(am_state[name], dae_state[name]), name
    # the layer above it and the output layer did train
    fresh = run_script(
        ROOT / "workflow/scripts/train_am.py",
        base / "fbank/train",
        base / "fbank/dev",
        base / "tokens/sp.model",
        tmp_path / "am_random",
        "--model",
        json.dumps(AM),
        "--train",
        '{"max_epochs": 1, "batch_frames": 4000, "warmup_steps": 5}',
        "--features",
        FBANK,
        "--cmvn",
        "speaker",
        "--no-progress",
    )
    assert fresh.returncode == 0
    random_state = checkpoint.load(tmp_path / "am_random/epoch-1.pt")["model"]
    assert not torch.equal(
        am_state["encoder.layers.0.forward_lstm.weight_ih_l0"],
        random_state["encoder.layers.0.forward_lstm.weight_ih_l0"],
    )


def test_initialize_from_dae_copies_by_name_and_refuses_another_shape():
    from speechrecipe.config import ModelConfig
    from speechrecipe.model import CTCModel, DenoisingAutoencoder
    from speechrecipe.model.pretrained import initialize_from_dae

    config = ModelConfig.from_dict({**AM, "input_dim": 40, "vocab_size": 12})
    torch.manual_seed(0)
    autoencoder = DenoisingAutoencoder(config, layers=2)
    model = CTCModel(config)
    output_before = model.output.weight.clone()
    copied = initialize_from_dae(model, autoencoder.state_dict())
    assert len(copied) == 16  # 2 layers x 2 directions x 4 LSTM tensors
    for name, tensor in autoencoder.state_dict().items():
        if name.startswith("encoder."):
            assert torch.equal(model.state_dict()[name], tensor)
    assert torch.equal(model.output.weight, output_before)
    wider = CTCModel(ModelConfig.from_dict({**AM, "hidden": 32, "input_dim": 40, "vocab_size": 12}))
    with pytest.raises(ValueError, match="another am.model"):
        initialize_from_dae(wider, autoencoder.state_dict())
    with pytest.raises(ValueError, match="1 to 2"):
        DenoisingAutoencoder(config, layers=3)


def test_layerwise_pretraining_builds_the_stack_one_layer_at_a_time(tmp_path, noisy_features):
    """dae.layerwise: a 1-layer DAE, then a 2-layer one on top whose lower layer stays exactly stage 1's."""
    from speechrecipe import checkpoint

    base = noisy_features
    result = run_script(
        ROOT / "workflow/scripts/train_dae.py",
        base / "fbank/train_noisy",
        base / "fbank/train",
        base / "fbank/dev_noisy",
        base / "fbank/dev",
        tmp_path / "dae",
        "--model",
        json.dumps(AM),
        "--layers",
        2,
        "--layerwise",
        "--train",
        '{"max_epochs": 1, "batch_frames": 4000, "warmup_steps": 5, "average_best": 1}',
        "--features",
        FBANK,
        "--cmvn",
        "speaker",
        "--threads",
        1,
        "--no-progress",
    )
    assert "layer-wise pretraining: stage 1 of 2" in result.stderr
    first = checkpoint.load(tmp_path / "dae/layer1/final.pt")["model"]
    final = checkpoint.load(tmp_path / "dae/final.pt")
    assert final["model_config"]["layers"] == 2
    lower = [name for name in first if name.startswith("encoder.")]
    assert any(name.startswith("encoder.layers.0.") for name in lower)
    assert not any(name.startswith("encoder.layers.1.") for name in lower)
    for name in lower:  # kept fixed through stage 2
        assert torch.equal(final["model"][name], first[name]), name
    upper = [name for name in final["model"] if name.startswith("encoder.layers.1.")]
    assert upper and (tmp_path / "dae/history.tsv").is_file()
