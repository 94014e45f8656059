#!/usr/bin/env python3
"""Compute Kaldi-compatible features for one job's share of a data directory.

    python workflow/scripts/make_features.py data/fsdd/train data/fsdd/fbank/train --job 1 --nj 4 \
        --config '{"type": "fbank", "num_mel_bins": 80, "sample_rate": 16000}' --speed-perturb 0.9 1.0 1.1

Job j of nj takes the j-th contiguous slice of the sorted utterances and writes
<out-dir>/data/feats.<j>.ark and .scp (kaldiio). With speed perturbation every
utterance is computed once per factor, as 'sp<factor>-<utt>' (factor 1 keeps the id).

Both files are written under temporary names; the archive is renamed into place
first and its index (.scp) last, so a job killed at any point leaves either both
complete or no .scp at all. Temporaries left by a killed earlier run of the same
job are removed when it starts again. Recordings that were mixed down to mono or
resampled are counted in the log.
"""

import argparse
import logging
from pathlib import Path

import kaldiio
import numpy as np
from tqdm import tqdm

from speechrecipe.audio import AudioError, FormatReport
from speechrecipe.cli import fail, json_or_file, setup_logging
from speechrecipe.datadir import DataDir
from speechrecipe.features import FeatureConfig, compute_entry
from speechrecipe.fileio import atomic_path


def perturbed_id(utt_or_spk: str, factor: float) -> str:
    return utt_or_spk if factor == 1.0 else f"sp{factor:g}-{utt_or_spk}"


def job_slice(utterances: list, job: int, nj: int) -> list:
    n = len(utterances)
    return utterances[(job - 1) * n // nj: job * n // nj]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--job", type=int, default=1)
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--config", type=json_or_file, default={}, help="feature config (JSON or a YAML/JSON file)")
    parser.add_argument("--speed-perturb", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    setup_logging()
    import torch

    torch.set_num_threads(1)  # one job, one core: parallelism comes from running nj jobs
    config = FeatureConfig.from_dict(args.config)
    data = DataDir.load(args.data_dir)
    utterances = job_slice(data.utterances, args.job, args.nj)
    out = Path(args.out_dir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    ark, scp = out / f"feats.{args.job}.ark", out / f"feats.{args.job}.scp"
    remove_stale_temporaries(ark, scp)
    logging.info("job %d/%d: %d utterances x %d speed factor(s), %s", args.job, args.nj, len(utterances),
                 len(args.speed_perturb), config)
    frames, empty = 0, []
    report = FormatReport(config.sample_rate)
    with atomic_path(scp) as tmp_scp:
        with atomic_path(ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                for utt in tqdm(utterances, desc=f"features job {args.job}", mininterval=5):
                    segment = data.segments.get(utt)
                    entry = data.wav_scp[segment[0] if segment else utt]
                    for factor in args.speed_perturb:
                        try:
                            # Each recording is counted once, not once per speed factor.
                            feats = compute_entry(entry, config, factor, segment,
                                                  report=report if factor == args.speed_perturb[0] else None, name=utt)
                        except AudioError as e:
                            fail(f"{args.data_dir}/wav.scp: utterance '{utt}': {e}. Fix the entry or remove the "
                                 "utterance, then re-run.")
                        if not np.isfinite(feats).all():
                            # NaN or inf samples (a corrupt float WAV) would poison the CMVN statistics of
                            # the whole speaker, and every training batch the utterance lands in.
                            fail(f"{args.data_dir}/wav.scp: utterance '{utt}' ({entry}) gives non-finite "
                                 "features: the audio holds NaN or infinite samples. Fix: re-encode or replace "
                                 "the recording, or remove the utterance from the data directory.")
                        if len(feats) == 0:
                            empty.append(perturbed_id(utt, factor))
                        writer(perturbed_id(utt, factor), feats)
                        frames += len(feats)
        # The archive is in place; now its index, which names the archive it was written to:
        # point it at the final name, and rename it last.
        lines = tmp_scp.read_text().splitlines()
        tmp_scp.write_text("".join(line.replace(str(tmp_ark), str(ark)) + "\n" for line in lines))
    for line in report.lines():
        logging.info("%s", line)
    if empty:
        logging.warning("%d utterance(s) shorter than one %g ms frame have no features (kept as empty matrices, "
                        "dropped with a count when the features are loaded): %s", len(empty),
                        config.frame_length_ms, ", ".join(empty[:5]))
    logging.info("wrote %s: %d matrices, %d frames", ark, len(lines), frames)


def remove_stale_temporaries(*targets: Path) -> None:
    """Delete temporaries of these outputs left by a killed run of the same job (atomic_path's names).

    Only this job writes these names (Snakemake locks the directory), so nothing alive owns them.
    """
    for target in targets:
        for stale in target.parent.glob(f".{target.name}.*.tmp*"):
            logging.info("removing %s, left by an interrupted run of this job", stale)
            stale.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
