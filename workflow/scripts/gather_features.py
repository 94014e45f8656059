#!/usr/bin/env python3
"""Merge the jobs of make_features.py into one feature directory, with CMVN statistics.

    python workflow/scripts/gather_features.py data/fsdd/train data/fsdd/fbank/train --nj 4

Writes feats.scp, utt2num_frames, text, utt2spk, spk2utt, utt2dur (speed-perturbed
copies included) and per-speaker CMVN statistics (cmvn.ark + cmvn.scp, Kaldi's
layout); fails if any utterance of the data directory has no features.

Every matrix is read back before anything is written: a job archive that is
truncated or corrupt (a full disk, a copy cut short) is reported by name and
removed together with its .scp, so that re-running the same snakemake command
rebuilds that job instead of training on a broken file.
"""

import argparse
import logging
from pathlib import Path

from speechrecipe.archive import ArchiveError, load_matrix, matrix_writer
from speechrecipe.augment import perturbed_id
from speechrecipe.cli import fail, setup_logging
from speechrecipe.cmvn import accumulate_stats
from speechrecipe.datadir import DataDir
from speechrecipe.fileio import read_table, write_table

log = logging.getLogger("gather_features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--speed-perturb", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    setup_logging()
    out = Path(args.out_dir)
    data = DataDir.load(args.data_dir)

    feats_scp: dict[str, str] = {}
    job_of: dict[str, int] = {}
    for job in range(1, args.nj + 1):
        rows = read_table(out / "data" / f"feats.{job}.scp")
        feats_scp.update(rows)
        job_of.update(dict.fromkeys(rows, job))
    text, utt2spk, utt2dur = {}, {}, {}
    for factor in args.speed_perturb:
        for utt in data.utterances:
            text[perturbed_id(utt, factor)] = data.text[utt]
            utt2spk[perturbed_id(utt, factor)] = perturbed_id(data.utt2spk[utt], factor)
            if utt in data.utt2dur:
                utt2dur[perturbed_id(utt, factor)] = f"{data.utt2dur[utt] / factor:.3f}"
    missing = sorted(set(text) - set(feats_scp))
    if missing:
        fail(
            f"{out}: {len(missing)} utterance(s) have no features (e.g. {missing[:3]}); "
            f"re-run feature extraction for {args.data_dir}."
        )

    num_frames, by_speaker, broken = {}, {}, {}
    for utt in sorted(feats_scp):
        try:
            feats = load_matrix(feats_scp[utt])
        except ArchiveError as e:
            broken.setdefault(job_of[utt], f"'{utt}': {e}")
            continue
        num_frames[utt] = str(len(feats))
        # Accumulated as we go: a large corpus never has to fit in memory.
        stats = accumulate_stats([feats]) if len(feats) else None  # shorter than one frame: nothing to add
        if stats is not None:
            by_speaker[utt2spk[utt]] = by_speaker[utt2spk[utt]] + stats if utt2spk[utt] in by_speaker else stats
    if broken:
        for job in broken:
            for name in (f"feats.{job}.scp", f"feats.{job}.ark"):  # the index first: no scp without its ark
                (out / "data" / name).unlink(missing_ok=True)
        fail(
            f"{out}/data: the archive(s) of job(s) {', '.join(map(str, sorted(broken)))} are truncated or "
            f"corrupt ({'; '.join(broken.values())}). They have been removed, not used. Fix: run the same "
            f"snakemake command again to rebuild them (by hand: make_features.py --job N, then this script)."
        )
    with matrix_writer(out / "cmvn.ark", out / "cmvn.scp") as writer:
        for spk in sorted(by_speaker):
            writer(spk, by_speaker[spk])

    spk2utt = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    write_table(out / "text", text)
    write_table(out / "utt2spk", utt2spk)
    write_table(out / "spk2utt", {s: " ".join(u) for s, u in spk2utt.items()})
    if utt2dur:
        write_table(out / "utt2dur", utt2dur)
    write_table(out / "utt2num_frames", num_frames)
    write_table(out / "feats.scp", feats_scp)  # last: its presence means the directory is complete
    total = sum(int(n) for n in num_frames.values())
    log.info("%s: %d utterances, %d speakers, %d frames", out, len(feats_scp), len(by_speaker), total)


if __name__ == "__main__":
    main()
