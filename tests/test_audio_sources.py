"""Untranscribed audio for the DAE (dae.extra_audio): sources of every kind, the experiment's own recordings left out."""

import json

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, run_script, write_fsdd_data_dir
from speechrecipe.audio_sources import AudioSourceError, files_of, untranscribed_audio

NOISE = SHARED_DATA / "noise" / "speech_commands"
FEATURES = {"type": "fbank", "num_mel_bins": 40, "sample_rate": 8000}  # conftest's fsdd_features


def test_sources_name_audio_every_way_and_the_experiments_own_recordings_are_left_out(tmp_path, fsdd_recordings):
    lucas = str(fsdd_recordings / "*_lucas_*.wav")  # a glob pattern: 500 recordings
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for name in ("0_jackson_0.wav", "1_jackson_0.wav"):
        (folder / "sub" / name).symlink_to(fsdd_recordings / name)
    (folder / "notes.txt").write_text("not audio")
    george = write_fsdd_data_dir(tmp_path / "george", fsdd_recordings, ["george"], range(3))  # 30, with utt2dur
    single = fsdd_recordings / "5_jackson_9.wav"
    items, left_out = untranscribed_audio([lucas, str(folder), str(george), str(single)])
    assert left_out == 0 and len(items) == 500 + 2 + 30 + 1
    assert len({item.utt for item in items}) == len(items)
    by_utt = {item.utt: item for item in items}
    assert abs(by_utt["extra2-george-3_01"].seconds - 0.3) < 0.3 and by_utt["extra1-sub_0_jackson_0"].seconds > 0

    # a dev set holding 20 of lucas's recordings (through a symbolic link: recognized by the file itself)
    linked = tmp_path / "linked"
    linked.mkdir()
    for digit in range(10):
        for take in (0, 1):
            (linked / f"{digit}_lucas_{take}.wav").symlink_to(fsdd_recordings / f"{digit}_lucas_{take}.wav")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "wav.scp").write_text(
        "".join(f"lucas-{d}-{t} {linked / f'{d}_lucas_{t}.wav'}\n" for d in range(10) for t in (0, 1))
    )
    kept, left_out = untranscribed_audio([lucas, lucas], files_of([dev]))
    assert left_out == 2 * 20 and len(kept) == 480  # named twice, kept once

    with pytest.raises(AudioSourceError, match="names no audio"):
        untranscribed_audio([str(tmp_path / "nothing_here_*.wav")])


def dae_command(base, exp_dir, *options) -> list:
    return [
        ROOT / "workflow/scripts/train_dae.py",
        base / "data/train",
        base / "fbank/train",
        base / "data/dev",
        base / "fbank/dev",
        exp_dir,
        "--model",
        json.dumps({"hidden": 16, "layers": 1, "subsampling_factor": 2}),
        "--train",
        json.dumps({"max_epochs": 1, "batch_frames": 1500, "warmup_steps": 5, "lr": 0.005, "seed": 3}),
        "--features",
        json.dumps(FEATURES),
        "--cmvn",
        "speaker",
        "--threads",
        "1",
        "--no-progress",
        *options,
    ]


def test_the_dae_learns_from_untranscribed_audio_without_the_experiments_recordings(fsdd_features, tmp_path):
    if not NOISE.is_dir():
        pytest.skip(f"Speech Commands noise not found at {NOISE}")
    recordings = SHARED_DATA / "fsdd" / "recordings"
    mixing = json.dumps({"noise_dirs": [str(NOISE)], "snrs": [0, 10], "noise_probability": 1.0})
    # lucas (not in the experiment) and george's recordings, of which takes 5-9 are in its training set
    extra = ["--extra-audio", str(recordings / "*_lucas_*.wav"), str(recordings / "*_george_*.wav")]
    excluded = ["--exclude-audio", str(fsdd_features / "data/train"), str(fsdd_features / "data/dev")]
    result = run_script(*dae_command(fsdd_features, tmp_path / "dae", "--onthefly", mixing, *extra, *excluded))
    assert "untranscribed audio (dae.extra_audio): 950 recordings" in result.stderr
    assert "50 left out as recordings of the experiment's own sets" in result.stderr
    rows = (tmp_path / "dae/history.tsv").read_text().splitlines()
    header, first = rows[0].split("\t"), rows[1].split("\t")
    assert np.isfinite(float(first[header.index("dev_loss")]))
    alone = run_script(*dae_command(fsdd_features, tmp_path / "alone", "--onthefly", mixing))
    steps = {  # 100 transcribed utterances alone; with 950 more recordings about ten times the steps
        name: int((tmp_path / name / "history.tsv").read_text().splitlines()[1].split("\t")[1])
        for name in ("dae", "alone")
    }
    assert steps["dae"] > 5 * steps["alone"], (steps, alone.stderr[-500:])

    refused = run_script(*dae_command(fsdd_features, tmp_path / "refused", *extra), check=False)
    assert refused.returncode != 0 and "needs dae.onthefly" in refused.stderr


def test_the_recipe_gives_the_dae_its_extra_audio_and_every_set_to_leave_out(tmp_path, fsdd_recordings):
    from test_recipe import TINY, snakemake

    extra = {"am": {"init": "dae"}, "dae": {"onthefly": True, "extra_audio": [str(fsdd_recordings / "*_lucas_*.wav")]}}
    result = snakemake(tmp_path, TINY, extra, args=["-n", "-p"])
    assert f"--extra-audio '{fsdd_recordings}/*_lucas_*.wav' --exclude-audio" in result.stdout
    for name in ("train", "dev", "test"):
        assert f"data/synth_digits/{name} " in result.stdout.split("--exclude-audio", 1)[1]
    refused = snakemake(tmp_path, TINY, {**extra, "dae": {"extra_audio": ["x"]}}, args=["-n"], check=False)
    assert refused.returncode != 0 and "set dae.onthefly: true" in refused.stdout + refused.stderr
