#!/usr/bin/env python3
"""Make a noisy copy of a Kaldi data directory: every utterance mixed with noise at an SNR.

    python workflow/scripts/mix_noise.py data/fsdd/test data/fsdd/test_sc_5dB \
        --noise ../shared/data/noise/speech_commands --snrs 5 --rate 8000 --seed 1

Each utterance gets a noise file, an offset into it and an SNR (one of --snrs) drawn from
(--seed, utterance id) alone; noise shorter than the utterance loops, and every noise file is
resampled to --rate. Writes OUT_DIR/wav/<utt>.wav (16-bit, --rate), the Kaldi tables
(same utterance ids and speakers as the clean set) and utt2noise (``utt snr offset noise-file``),
from which speechrecipe.noise.rebuild remakes any utterance exactly. The noise sources are all
checked before anything is mixed.
"""

import argparse
import logging
from pathlib import Path

from speechrecipe.cli import fail, setup_logging
from speechrecipe.datadir import DataDir
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
    out = Path(args.out_dir)
    noisy, utt2noise = mix_data_dir(clean, out, noises, args.snrs, args.seed, args.rate)
    write_table(out / "utt2noise", utt2noise)
    noisy.save(out)  # the tables last: the rule's outputs appear only once every file is written
    log.info("%s: %s mixed at %s dB", out, noisy.summary(), "/".join(f"{s:g}" for s in args.snrs))


if __name__ == "__main__":
    main()
