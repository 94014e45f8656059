#!/usr/bin/env python3
"""Mix one job's share of a Kaldi data directory with noise at an SNR (the noisy copy's audio).

    python workflow/scripts/mix_noise.py data/fsdd/test data/fsdd/test_sc_5dB \
        --noise ../shared/data/noise/speech_commands --snrs 5 --rate 8000 --seed 1 --job 1 --nj 2
    python workflow/scripts/gather_noise.py data/fsdd/test data/fsdd/test_sc_5dB --nj 2

Job j of nj takes the j-th contiguous slice of the sorted utterances (as make_features.py). Each
utterance gets a noise file, an offset into it and an SNR (one of --snrs) drawn from (--seed,
utterance id) alone; noise shorter than the utterance loops, and every noise file is resampled to
--rate. Writes OUT_DIR/wav/<xx>/<utt>.wav (16-bit, --rate; 256 sub-folders by a hash of the id,
whatever nj is) and the job's tables, wav.scp, utt2dur and utt2noise (``utt snr offset
noise-file``, from which speechrecipe.noise.rebuild remakes any utterance exactly), under
OUT_DIR/split<nj>/<j>/; gather_noise.py makes the data directory of them. The noise sources are all
checked before anything is mixed.
"""

import argparse
import logging
from pathlib import Path

from speechrecipe.cli import fail, setup_logging
from speechrecipe.datadir import DataDir, job_slice
from speechrecipe.fileio import write_table
from speechrecipe.noise import NoiseError, load_noise, mix_data_dir, noise_files

log = logging.getLogger("mix_noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clean_dir", help="the Kaldi data directory to copy")
    parser.add_argument("out_dir", help="the noisy data directory to write")
    parser.add_argument("--noise", nargs="+", required=True, metavar="PATH", help="noise files or directories of them")
    parser.add_argument("--snrs", type=float, nargs="+", required=True, help="SNRs (dB) to draw from")
    parser.add_argument("--rate", type=int, required=True, help="sample rate of the noisy audio")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--job", type=int, default=1)
    parser.add_argument("--nj", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    try:
        files = noise_files(args.noise)
        noises = {str(path): load_noise(path, args.rate) for path in files}
    except NoiseError as e:
        fail(str(e))
    log.info(
        "%d noise file(s): %s",
        len(noises),
        ", ".join(f"{Path(n).name} ({len(x) / args.rate:.1f} s)" for n, x in noises.items()),
    )
    clean = DataDir.load(args.clean_dir)
    utterances = job_slice(clean.utterances, args.job, args.nj)
    out = Path(args.out_dir)
    noisy, utt2noise = mix_data_dir(clean, out, noises, args.snrs, args.seed, args.rate, utterances=utterances)
    part = out / f"split{args.nj}" / str(args.job)
    write_table(part / "wav.scp", noisy.wav_scp)
    write_table(part / "utt2dur", {u: f"{d:.3f}" for u, d in noisy.utt2dur.items()})
    write_table(part / "utt2noise", utt2noise)  # last: the job's output appears once every file is written
    log.info(
        "job %d/%d: %d of %d utterances mixed at %s dB",
        args.job,
        args.nj,
        len(utterances),
        len(clean.utterances),
        "/".join(f"{s:g}" for s in args.snrs),
    )


if __name__ == "__main__":
    main()
