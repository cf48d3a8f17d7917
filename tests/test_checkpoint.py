"""Checkpoint files: round trip, embedded record, content fingerprint, atomic replacement, strict assignment."""
import json
import os

import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from vpmnet import checkpoint


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"a.weight": rng.standard_normal((3, 2)).astype(np.float32), "b": np.arange(4, dtype=np.int32)}


def test_round_trip_with_optimizer_state(tmp_path):
    path = str(tmp_path / "last.safetensors")
    record = checkpoint.save(path, _weights(), {"state": {"epoch": 2}}, {"exp_avg.a.weight": np.ones((3, 2), np.float32)})
    weights, optimizer, loaded = checkpoint.load(path)
    assert loaded == record and loaded["state"] == {"epoch": 2} and loaded["format"] == checkpoint.FORMAT
    assert set(weights) == {"a.weight", "b"} and np.array_equal(weights["a.weight"], _weights()["a.weight"])
    assert list(optimizer) == ["exp_avg.a.weight"]
    assert json.load(open(tmp_path / "last.json")) == record          # the readable sidecar
    assert checkpoint.resolve(str(tmp_path)) == path                  # a run folder resolves to its checkpoint


def test_fingerprint_depends_on_content_only():
    assert checkpoint.fingerprint(_weights(0)) == checkpoint.fingerprint(dict(reversed(list(_weights(0).items()))))
    assert checkpoint.fingerprint(_weights(0)) != checkpoint.fingerprint(_weights(1))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "last.safetensors")
    checkpoint.save(path, _weights(0), {"state": 1})

    def crash(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, _weights(1), {"state": 2})
    weights, _, record = checkpoint.load(path)
    assert record["state"] == 1 and np.array_equal(weights["a.weight"], _weights(0)["a.weight"])
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        checkpoint.load(str(tmp_path / "nothere.safetensors"))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(ValueError, match="corrupt.safetensors: not a readable safetensors checkpoint"):
        checkpoint.load(str(corrupt))
    from safetensors.numpy import save_file

    save_file(_weights(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="plain.safetensors: a safetensors file but not a vpmnet checkpoint"):
        checkpoint.load(str(tmp_path / "plain.safetensors"))
    with pytest.raises(FileNotFoundError, match="no best.safetensors or last.safetensors"):
        checkpoint.resolve(str(tmp_path / ".."))


def test_assign_lists_missing_unexpected_and_mismatched():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = Parameter(Tensor(np.zeros((2, 2), np.float32)), name="w")
            self.v = Parameter(Tensor(np.zeros(3, np.float32)), name="v")

    with pytest.raises(ValueError, match=r"src: .*missing \(1\): v; unexpected \(1\): u; shape mismatch \(1\): w: file \(3,\) vs model \(2, 2\)"):
        checkpoint.assign(Net(), {"w": np.zeros(3, np.float32), "u": np.zeros(1, np.float32)}, "src")
    net = Net()
    checkpoint.assign(net, {"w": np.ones((2, 2), np.float32), "v": np.full(3, 2, np.float32)}, "src")
    assert net.w.asnumpy().sum() == 4 and net.v.asnumpy().sum() == 6
