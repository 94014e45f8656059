#!/usr/bin/env python3
"""Write an experiment's effective config (JSON, as the recipe passes it) as YAML, for RESULTS.md.

python workflow/scripts/write_config.py '{"tag": "fsdd", ...}' exp/fsdd/config.yaml
"""

import argparse
import json

import yaml

from speechrecipe.cli import setup_logging
from speechrecipe.fileio import atomic_open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=json.loads, help="the config as one JSON object")
    parser.add_argument("out", help="the YAML file to write")
    args = parser.parse_args()
    setup_logging()
    with atomic_open(args.out) as f:
        yaml.safe_dump(args.config, f, sort_keys=False)


if __name__ == "__main__":
    main()
