"""The one atomic writer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from audioreg import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "table.csv"
    atomic.write_text(path, "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(path, broken)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_writers_round_trip(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.load(atomic.save_npy(tmp_path / "a.npy", arr)), arr)
    df = pd.DataFrame({"name": ["bad\udcff name", "ok"], "x": [1, 2]})
    text = atomic.write_csv(tmp_path / "t.csv", df).read_bytes().decode("utf-8")
    assert "bad\\xff name" in text  # bytes that are not UTF-8 are escaped, the file stays UTF-8
    assert atomic.write_json(tmp_path / "m.json", {"a": 1}).read_text() == '{\n  "a": 1\n}'
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "nan.json", {"a": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    assert atomic.write_yaml(tmp_path / "p.yaml", {"dropout": 0.5}).read_text() == "dropout: 0.5\n"


def test_temp_names_are_per_writer_and_only_dead_writers_are_cleaned(tmp_path):
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    files = {
        f".a.npy.{host}-{os.getpid()}.tmp": True,  # this live process
        f".b.npy.{host}-{dead}.tmp": False,  # a writer that has exited
        ".c.npy.other-host.example-12.tmp": True,  # another host's writer may still run
        ".last.pt.k1ll3d.tmp": False,  # not a name this writer makes
        "d.npy": True,  # not a temp file
    }
    for name in files:
        (tmp_path / name).write_bytes(b"x")
    assert atomic.temp_path(tmp_path / "a.npy").name == f".a.npy.{host}-{os.getpid()}.tmp"
    assert atomic.remove_stale_temps(tmp_path, names=("zzz",)) == 0
    assert atomic.remove_stale_temps(tmp_path) == 2
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in files.items() if kept}
