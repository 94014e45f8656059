"""Atomic writes: complete or absent, and readable like any other file of the user's (not tempfile's 0600)."""

import stat
import subprocess
import sys

import pytest

from conftest import ROOT
from speechrecipe.fileio import atomic_open, read_table, write_table

WRITE_UNDER_UMASK = """
import os, stat, sys
os.umask(int(sys.argv[1], 8))
sys.path.insert(0, sys.argv[3])
import torch
from speechrecipe import checkpoint
from speechrecipe.fileio import atomic_open, write_table
out = sys.argv[2]
with open(f"{out}/plain.txt", "w") as f:
    f.write("x")
with atomic_open(f"{out}/atomic.txt") as f:
    f.write("x")
write_table(f"{out}/table", {"a": "1"})
checkpoint.save({"w": torch.zeros(2)}, f"{out}/epoch-1.pt")
print(" ".join(oct(stat.S_IMODE(os.stat(f"{out}/{n}").st_mode)) for n in ("plain.txt", "atomic.txt", "table", "epoch-1.pt")))
"""


@pytest.mark.parametrize("umask,expected", [("022", "0o644"), ("002", "0o664"), ("077", "0o600")])
def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path, umask, expected):
    out = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, umask, str(tmp_path), str(ROOT / "workflow")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [expected] * 4


def test_an_interrupted_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "results.tsv") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_table(tmp_path / "text", {"b": "TWO", "a": "ONE"})
    assert (tmp_path / "text").read_text() == "a ONE\nb TWO\n" and read_table(tmp_path / "text") == {
        "a": "ONE",
        "b": "TWO",
    }
    (tmp_path / "plain").write_text("x")
    assert stat.S_IMODE((tmp_path / "text").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
