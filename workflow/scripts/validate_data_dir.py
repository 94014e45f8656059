#!/usr/bin/env python3
"""Validate a Kaldi data directory (the checks of Kaldi's validate_data_dir.sh) and summarize it.

    python workflow/scripts/validate_data_dir.py data/fsdd/train --summary data/fsdd/train/validation.txt

Exits non-zero with every problem listed (file, line, fix) when the directory is malformed.
"""

import argparse

from speechrecipe.cli import fail, setup_logging
from speechrecipe.datadir import DataDirError, validate
from speechrecipe.fileio import atomic_open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--summary", help="write a summary here when the directory is valid")
    parser.add_argument("--no-audio-check", action="store_true", help="skip opening every audio file")
    args = parser.parse_args()
    setup_logging()
    try:
        data = validate(args.data_dir, check_audio=not args.no_audio_check)
    except DataDirError as e:
        fail(str(e))
    hours = sum(data.utt2dur.values()) / 3600
    words = sum(len(t.split()) for t in data.text.values())
    summary = (
        f"data_dir\t{args.data_dir}\nutterances\t{len(data.text)}\nspeakers\t{len(set(data.utt2spk.values()))}\n"
        f"words\t{words}\nhours\t{hours:.4f}\n"
    )
    print(summary, end="")
    if args.summary:
        with atomic_open(args.summary) as f:
            f.write(summary)


if __name__ == "__main__":
    main()
