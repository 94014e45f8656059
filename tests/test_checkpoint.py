import os

import pytest
import torch

from speechrecipe import checkpoint
from speechrecipe.config import config_hash


def test_save_is_atomic_and_loads(tmp_path):
    checkpoint.save({"model": {"w": torch.ones(3)}, "epoch": 1}, tmp_path / "epoch-1.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-1.pt"]  # no temporary left behind
    assert checkpoint.load(tmp_path / "epoch-1.pt")["epoch"] == 1


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_is_refused(tmp_path):
    path = tmp_path / "epoch-1.pt"
    torch.save({"model": {}, "payload": Exploit()}, path)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_truncated_newest_checkpoint_is_skipped_for_the_one_before(tmp_path):
    for epoch in (1, 2):
        checkpoint.save({"model": {}, "epoch": epoch, "config_hash": "abc"}, tmp_path / f"epoch-{epoch}.pt")
    data = (tmp_path / "epoch-2.pt").read_bytes()
    (tmp_path / "epoch-2.pt").write_bytes(data[: len(data) // 2])
    assert checkpoint.latest_resumable(tmp_path, "abc")["epoch"] == 1


def test_checkpoints_of_another_config_are_moved_aside_not_deleted(tmp_path):
    checkpoint.save({"model": {}, "epoch": 1, "config_hash": "old"}, tmp_path / "epoch-1.pt")
    assert checkpoint.latest_resumable(tmp_path, "new") is None
    assert (tmp_path / "previous-old" / "epoch-1.pt").exists()
    assert not (tmp_path / "epoch-1.pt").exists()


def test_average_of_weights(tmp_path):
    for i, value in enumerate((1.0, 3.0)):
        checkpoint.save({"model": {"w": torch.full((2,), value), "n": torch.tensor(i)}}, tmp_path / f"{i}.pt")
    avg = checkpoint.average([tmp_path / "0.pt", tmp_path / "1.pt"])
    torch.testing.assert_close(avg["w"], torch.full((2,), 2.0))
    assert avg["n"].dtype == torch.int64


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
