#!/usr/bin/env python3
"""Make the noisy copy's data directory from the jobs of mix_noise.py.

    python workflow/scripts/gather_noise.py data/fsdd/test data/fsdd/test_sc_5dB --nj 2

Writes OUT_DIR's Kaldi tables (the clean set's utterance ids, texts and speakers; wav.scp and
utt2dur of the noisy audio) and utt2noise, merged from OUT_DIR/split<nj>/<j>/; fails, naming the
job or the utterances, if a job has not finished or left any utterance of the clean set out.
"""

import argparse
import logging
from pathlib import Path

from speechrecipe.cli import fail, setup_logging
from speechrecipe.datadir import DataDir
from speechrecipe.fileio import read_table, write_table

log = logging.getLogger("gather_noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clean_dir", help="the Kaldi data directory that was copied")
    parser.add_argument("out_dir", help="the noisy data directory (mix_noise.py's OUT_DIR)")
    parser.add_argument("--nj", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    clean = DataDir.load(args.clean_dir)
    out = Path(args.out_dir)
    noisy = DataDir(text=dict(clean.text), utt2spk=dict(clean.utt2spk))
    utt2noise = {}
    for job in range(1, args.nj + 1):
        part = out / f"split{args.nj}" / str(job)
        if not (part / "utt2noise").is_file():
            fail(
                f"{part}: job {job} of {args.nj} has not finished (no utt2noise). Fix: run mix_noise.py --job {job} --nj {args.nj}."
            )
        noisy.wav_scp.update(read_table(part / "wav.scp"))
        noisy.utt2dur.update({u: float(d) for u, d in read_table(part / "utt2dur").items()})
        utt2noise.update(read_table(part / "utt2noise"))
    missing = sorted(set(clean.text) - set(utt2noise))
    if missing:
        fail(
            f"{out}: {len(missing)} utterance(s) of {args.clean_dir} were not mixed (e.g. {missing[:3]}). "
            f"Fix: re-run mix_noise.py --nj {args.nj} for every job, then this script."
        )
    write_table(out / "utt2noise", utt2noise)
    noisy.save(out)  # the tables last: the rule's outputs appear only once every file is written
    log.info("%s: %s from %d job(s)", out, noisy.summary(), args.nj)


if __name__ == "__main__":
    main()
