"""Noise mixing on real FSDD speech and Speech Commands noise: SNR, determinism, utt2noise, bad noise input."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import ROOT, SHARED_DATA, run_script, write_fsdd_data_dir

NOISE_DIR = SHARED_DATA / "noise" / "speech_commands"
MIX = ROOT / "workflow/scripts/mix_noise.py"
GATHER = ROOT / "workflow/scripts/gather_noise.py"


@pytest.fixture(scope="module")
def noise_dir():
    if not NOISE_DIR.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE_DIR} (the shared data folder beside the project)")
    return NOISE_DIR


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory, fsdd_recordings):
    """20 FSDD recordings (8 kHz) of two speakers as a Kaldi data directory."""
    return write_fsdd_data_dir(tmp_path_factory.mktemp("clean") / "test", fsdd_recordings, ["jackson", "nicolas"], [0])


def mix_set(clean, out, noise, snrs, seed=1, rate=8000, nj=1):
    """mix_noise.py in ``nj`` jobs, then gather_noise.py: the first that fails, else the gather's result."""
    for job in range(1, nj + 1):
        options = ["--rate", rate, "--seed", seed, "--job", job, "--nj", nj]
        result = run_script(
            MIX, clean, out, "--noise", *map(str, noise), "--snrs", *map(str, snrs), *options, check=False
        )
        if result.returncode != 0:
            return result
    return run_script(GATHER, clean, out, "--nj", nj, check=False)


def utt2noise(folder):
    from speechrecipe.fileio import read_table
    from speechrecipe.noise import NoiseChoice

    return {u: NoiseChoice.from_value(v) for u, v in read_table(folder / "utt2noise").items()}


@pytest.mark.parametrize("snr", [0, 5, 10, 20])
def test_the_written_audio_has_the_requested_snr(tmp_path, clean_dir, noise_dir, snr):
    from speechrecipe.audio import read_audio
    from speechrecipe.datadir import DataDir
    from speechrecipe.noise import load_noise, measured_snr, mix_gains, noise_segment

    result = mix_set(clean_dir, tmp_path / "noisy", [noise_dir], [snr])
    assert result.returncode == 0, result.stderr
    clean, noisy = DataDir.load(clean_dir), DataDir.load(tmp_path / "noisy")
    for utt, choice in utt2noise(tmp_path / "noisy").items():
        speech, _ = read_audio(clean.wav_scp[utt], rate=8000)
        written, rate = soundfile.read(noisy.wav_scp[utt], dtype="float32")
        assert rate == 8000 and len(written) == len(speech)
        _, scale = mix_gains(speech, noise_segment(load_noise(choice.noise, 8000), choice.offset, len(speech)), snr)
        assert abs(measured_snr(speech, written, scale) - snr) < 0.1, utt


def test_the_same_utterance_gets_bit_identical_noisy_audio_on_a_rerun(tmp_path, clean_dir, noise_dir):
    from speechrecipe.datadir import DataDir

    assert mix_set(clean_dir, tmp_path / "a", [noise_dir], [0, 5, 10]).returncode == 0
    # a second run over a subset of the utterances, in its own folder: order and neighbours do not matter
    subset = DataDir.load(clean_dir).subset(DataDir.load(clean_dir).utterances[5:])
    subset.save(tmp_path / "subset")
    assert mix_set(tmp_path / "subset", tmp_path / "b", [noise_dir], [0, 5, 10]).returncode == 0
    a, b = DataDir.load(tmp_path / "a"), DataDir.load(tmp_path / "b")
    assert set(b.wav_scp) < set(a.wav_scp)
    for utt in b.wav_scp:
        assert Path(a.wav_scp[utt]).read_bytes() == Path(b.wav_scp[utt]).read_bytes(), utt
    assert {u: c for u, c in utt2noise(tmp_path / "a").items() if u in b.wav_scp} == utt2noise(tmp_path / "b")
    # ...and another seed draws other noise
    assert mix_set(clean_dir, tmp_path / "c", [noise_dir], [0, 5, 10], seed=2).returncode == 0
    assert utt2noise(tmp_path / "c") != utt2noise(tmp_path / "a")


def test_utt2noise_rebuilds_each_noisy_utterance(tmp_path, clean_dir, noise_dir):
    from speechrecipe.audio import read_audio
    from speechrecipe.datadir import DataDir
    from speechrecipe.noise import rebuild

    assert mix_set(clean_dir, tmp_path / "noisy", [noise_dir], [0, 20]).returncode == 0
    clean, noisy = DataDir.load(clean_dir), DataDir.load(tmp_path / "noisy")
    choices = utt2noise(tmp_path / "noisy")
    assert {c.snr for c in choices.values()} == {0.0, 20.0}  # both SNRs drawn over 20 utterances
    assert len({c.noise for c in choices.values()}) > 1
    for utt, choice in choices.items():
        speech, _ = read_audio(clean.wav_scp[utt], rate=8000)
        written, _ = soundfile.read(noisy.wav_scp[utt], dtype="float32")
        # the file is 16-bit PCM (libsndfile writes x * 32767, reads / 32768): equal to the rebuilt float
        # audio within one quantization step
        assert np.max(np.abs(rebuild(speech, choice, 8000) - written)) <= 1.5 / 32768
    # the noisy copy is a valid Kaldi data directory with the clean set's ids and transcripts
    run_script(ROOT / "workflow/scripts/validate_data_dir.py", tmp_path / "noisy")
    assert noisy.text == clean.text and noisy.utt2spk == clean.utt2spk


def test_short_noise_loops_and_noise_is_resampled(noise_dir):
    from speechrecipe.noise import load_noise, noise_segment

    noise = np.arange(5, dtype=np.float32)
    assert noise_segment(noise, 3, 12).tolist() == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    native, rate = soundfile.read(noise_dir / "white_noise.wav", dtype="float32")
    assert rate == 16000
    resampled = load_noise(noise_dir / "white_noise.wav", 8000)
    assert abs(len(resampled) - len(native) / 2) <= 1


def test_generated_noise(tmp_path, clean_dir):
    from speechrecipe.noise import generate

    white = generate("white", 2.0, 8000, seed=1)
    pink = generate("pink", 2.0, 8000, seed=1)
    assert len(white) == len(pink) == 16000
    assert np.array_equal(white, generate("white", 2.0, 8000, seed=1))

    def low_share(x):  # share of the power below 500 Hz
        power = np.abs(np.fft.rfft(x)) ** 2
        return power[: len(power) * 500 // 4000].sum() / power.sum()

    assert low_share(pink) > 5 * low_share(white)  # 1/f: most of pink noise's power is at low frequencies
    result = run_script(
        ROOT / "workflow/scripts/make_noise.py",
        tmp_path,
        "--types",
        "babble",
        "--speech-dir",
        clean_dir,
        "--rate",
        8000,
        "--seconds",
        3,
        "--seed",
        1,
    )
    babble, rate = soundfile.read(tmp_path / "babble.wav", dtype="float32")
    assert rate == 8000 and len(babble) == 24000 and np.std(babble) > 0.01, result.stderr


def test_bad_noise_sources_are_named_before_anything_is_mixed(tmp_path, clean_dir, noise_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("no audio here")
    broken = tmp_path / "broken"
    shutil.copytree(noise_dir, broken)
    (broken / "zz_truncated.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    cases = {
        tmp_path / "missing": "does not exist",
        empty: "holds no audio files",
        broken: "zz_truncated.wav' cannot be read",
    }
    for source, message in cases.items():
        out = tmp_path / f"out_{source.name}"
        result = mix_set(clean_dir, out, [source], [5])
        assert result.returncode != 0
        assert message in result.stderr and "Fix:" in result.stderr, result.stderr
        assert not out.exists()  # nothing mixed, nothing written


def test_config_rejects_bad_snrs_and_missing_noise_before_any_job(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    snakemake = Path(sys.executable).with_name("snakemake")

    def dry_run(noise):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"noise": noise}))
        return subprocess.run(
            [
                str(snakemake),
                "-n",
                "--snakefile",
                str(ROOT / "Snakefile"),
                "--directory",
                str(tmp_path),
                "--configfile",
                str(tmp_path / "c.yaml"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    result = dry_run({"test_snrs": [5, 200]})
    assert result.returncode != 0 and "200" in result.stdout + result.stderr
    result = dry_run({"test_snrs": [5], "noise_dirs": [str(tmp_path / "nowhere")]})
    assert result.returncode != 0
    assert "nowhere' does not exist" in result.stdout + result.stderr


def test_compare_systems_lines_up_clean_and_noisy_conditions(tmp_path):
    header = "set\twer\tcer\twords\tins\tdel\tsub\tbase\tnoise\tsnr\n"
    rows = {
        "a": [
            "test\t10\t8\t100\t0\t0\t10\ttest\tclean\t",
            "test_sc_5dB\t40\t30\t100\t0\t0\t40\ttest\tsc\t5.0",
            "test_sc_0dB\t60\t50\t100\t0\t0\t60\ttest\tsc\t0.0",
            "dev\t9\t7\t100\t0\t0\t9\tdev\tclean\t",
        ],
        "b": [
            "test\t10.5\t8\t100\t0\t0\t10\ttest\tclean\t",
            "test_sc_5dB\t30\t25\t100\t0\t0\t30\ttest\tsc\t5.0",
            "test_sc_0dB\t45\t40\t100\t0\t0\t45\ttest\tsc\t0.0",
        ],
    }
    for name, lines in rows.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.tsv").write_text(header + "\n".join(lines) + "\n")
    out = run_script(
        ROOT / "workflow/scripts/compare_systems.py", tmp_path / "a", tmp_path / "b", "--relative-to", tmp_path / "a"
    ).stdout.splitlines()
    assert out[0].split(" | ")[1:] == ["clean", "sc 0 dB", "sc 5 dB |"]
    assert out[3].endswith("| 10.5 / 8 | 45 / 40 | 30 / 25 |")
    assert out[-1].endswith("| +5.0 | -25.0 | -25.0 |")


def test_jobs_and_sub_folders_give_the_same_noisy_set(tmp_path, clean_dir, noise_dir):
    from speechrecipe.datadir import DataDir

    assert mix_set(clean_dir, tmp_path / "one", [noise_dir], [0, 10]).returncode == 0
    assert mix_set(clean_dir, tmp_path / "three", [noise_dir], [0, 10], nj=3).returncode == 0
    one, three = DataDir.load(tmp_path / "one"), DataDir.load(tmp_path / "three")
    assert utt2noise(tmp_path / "one") == utt2noise(tmp_path / "three")
    assert one.utt2dur == three.utt2dur and one.text == three.text
    for utt, wav in three.wav_scp.items():
        # wav/<xx>/<utt>.wav, the same place whatever the number of jobs, and the same bytes
        assert Path(wav).relative_to(tmp_path / "three").parts[0] == "wav" and len(Path(wav).parts[-2]) == 2
        assert Path(wav).read_bytes() == Path(one.wav_scp[utt]).read_bytes()
        assert Path(wav).relative_to(tmp_path / "three") == Path(one.wav_scp[utt]).relative_to(tmp_path / "one")
    assert len({Path(w).parent for w in three.wav_scp.values()}) > 1  # spread over sub-folders
    # a job that has not finished is named by the gather, not silently left out
    (tmp_path / "three/split3/2/utt2noise").unlink()
    result = run_script(GATHER, clean_dir, tmp_path / "three", "--nj", 3, check=False)
    assert result.returncode != 0 and "job 2 of 3 has not finished" in result.stderr
