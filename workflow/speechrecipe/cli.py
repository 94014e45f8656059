"""What every stage script shares: logging to stderr (the rule redirects it to its log) and config arguments."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.info("command: %s", " ".join(sys.argv))


def json_or_file(value: str) -> dict:
    """A config section given as a JSON string or as the path of a JSON/YAML file (handy by hand)."""
    if value.lstrip().startswith("{"):
        return json.loads(value)
    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text()) or {}
    return json.loads(path.read_text())


def fail(message: str, code: int = 1) -> "None":
    """Stop with a message meant for a person (no traceback for expected errors)."""
    logging.error(message)
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(code)
