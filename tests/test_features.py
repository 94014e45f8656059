import kaldiio
import numpy as np
import torch

from conftest import ROOT, run_script, write_fsdd_data_dir
from speechrecipe.audio import read_audio
from speechrecipe.augment import speed_perturb
from speechrecipe.cmvn import accumulate_stats, stats_to_mean_std
from speechrecipe.config import FeatureConfig
from speechrecipe.features import compute, compute_entry


def test_fbank_of_real_audio_has_kaldi_frame_count_and_is_finite(fsdd_recordings):
    samples, rate = read_audio(str(fsdd_recordings / "3_george_7.wav"))
    assert rate == 8000
    feats = compute(samples, rate, FeatureConfig(num_mel_bins=80, sample_rate=16000))
    seconds = len(samples) / rate
    # Kaldi's snip_edges framing: 1 + (N - 400) // 160 frames at 16 kHz.
    assert feats.shape == (1 + (round(seconds * 16000) - 400) // 160, 80)
    assert np.isfinite(feats).all()
    # Speech is louder than the quietest frames by a wide margin in the low bands.
    energy = feats[:, :20].mean(axis=1)
    assert energy.max() - energy.min() > 5


def test_features_match_torchaudio_kaldi_fbank_directly(fsdd_recordings):
    from torchaudio.compliance import kaldi

    samples, rate = read_audio(str(fsdd_recordings / "0_jackson_3.wav"))
    ours = compute(samples, rate, FeatureConfig(num_mel_bins=40, sample_rate=8000))
    reference = kaldi.fbank(
        torch.from_numpy(samples * 32768).unsqueeze(0),
        num_mel_bins=40,
        sample_frequency=8000,
        dither=0.0,
        energy_floor=0.0,
    ).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_mfcc_has_requested_cepstra(fsdd_recordings):
    feats = compute_entry(
        str(fsdd_recordings / "5_lucas_1.wav"), FeatureConfig(type="mfcc", num_ceps=13, sample_rate=8000)
    )
    assert feats.shape[1] == 13 and np.isfinite(feats).all()


def test_speed_perturbation_changes_length_by_the_factor(fsdd_recordings):
    samples, rate = read_audio(str(fsdd_recordings / "8_yweweler_2.wav"))
    faster = speed_perturb(samples, rate, 1.1)
    slower = speed_perturb(samples, rate, 0.9)
    assert abs(len(faster) - len(samples) / 1.1) < 0.01 * len(samples)
    assert abs(len(slower) - len(samples) / 0.9) < 0.01 * len(samples)


def test_cmvn_stats_give_numpy_mean_and_std():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(3, 2, (70, 4))
    stats = accumulate_stats([a, b])
    assert stats.shape == (2, 5) and stats[0, -1] == 120
    mean, std = stats_to_mean_std(stats)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(mean, both.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, both.std(axis=0), rtol=1e-5)


def test_features_do_not_depend_on_the_number_of_jobs(tmp_path, fsdd_recordings):
    data = write_fsdd_data_dir(tmp_path / "data", fsdd_recordings, ["lucas"], range(2))
    config = '{"type": "fbank", "num_mel_bins": 23, "sample_rate": 16000}'
    results = {}
    for nj in (1, 3):
        out = tmp_path / f"fbank_nj{nj}"
        for job in range(1, nj + 1):
            run_script(
                ROOT / "workflow/scripts/make_features.py",
                data,
                out,
                "--job",
                job,
                "--nj",
                nj,
                "--config",
                config,
                "--speed-perturb",
                "1.0",
                "1.1",
            )
        run_script(ROOT / "workflow/scripts/gather_features.py", data, out, "--nj", nj, "--speed-perturb", "1.0", "1.1")
        results[nj] = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(out / "feats.scp")).items()}
    assert len(results[1]) == 40  # 20 utterances x 2 speed factors
    assert results[1].keys() == results[3].keys()
    assert any(k.startswith("sp1.1-lucas-") for k in results[1])
    for utt in results[1]:
        np.testing.assert_array_equal(results[1][utt], results[3][utt])
    # The perturbed copies got their own speakers (and so their own CMVN statistics).
    assert set(kaldiio.load_scp(str(tmp_path / "fbank_nj3" / "cmvn.scp"))) == {"lucas", "sp1.1-lucas"}
    utt2spk = dict(line.split() for line in (tmp_path / "fbank_nj3" / "utt2spk").read_text().splitlines())
    assert utt2spk["sp1.1-lucas-0_00"] == "sp1.1-lucas"


def test_unreadable_audio_stops_the_job_with_the_utterance_named(tmp_path, fsdd_recordings):
    data = write_fsdd_data_dir(tmp_path / "data", fsdd_recordings, ["lucas"], [0])
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    wav_scp = (data / "wav.scp").read_text().splitlines()
    wav_scp[3] = wav_scp[3].split()[0] + f" {tmp_path / 'broken.wav'}"
    (data / "wav.scp").write_text("\n".join(wav_scp) + "\n")
    result = run_script(ROOT / "workflow/scripts/make_features.py", data, tmp_path / "fbank", check=False)
    assert result.returncode != 0
    assert "wav.scp" in result.stderr and wav_scp[3].split()[0] in result.stderr
    assert not (tmp_path / "fbank" / "data" / "feats.1.scp").exists()  # nothing that looks complete
