"""GRU training under faults: a run killed with SIGKILL resumes to exactly the weights of an
uninterrupted run, and torn or leftover checkpoint files are never trusted.

The kill test runs :func:`audioreg.models.train_gru` in real subprocesses (their own process
group, so SIGKILL takes everything down at once, as a crash or an OOM kill would), on small
synthetic feature arrays stored as ``.npy`` files and read back as memmaps like the pipeline's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audioreg.models import train
from conftest import train_gru_with

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# Big enough that an epoch takes a few tenths of a second even on an idle machine, so the
# kill lands mid-run: the poll below sees epoch 1 with about 11 epochs (seconds) to spare.
N_TRAIN, N_VAL, MIN_LEN, MAX_LEN = 32, 8, 150, 300
EPOCHS = 12
# Two layers with dropout, so resuming also has to restore torch's RNG exactly.
MODEL = {"hidden_size": 16, "num_layers": 2, "dropout": 0.3, "batch_size": 8, "frame_pool": 1}
SEED = 7
TIMEOUT_S = 300.0  # per subprocess: generous for a loaded 2-core machine

WORKER = r"""
import json, logging, sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from audioreg.models import GRURegressor

data, checkpoint_dir, kwargs = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])


def part(name):
    files = sorted(data.glob(f"{name}_seq_*.npy"))
    return [np.load(f, mmap_mode="r") for f in files], np.load(data / f"{name}_targets.npy")


(train_x, train_y), (val_x, val_y) = part("train"), part("val")
GRURegressor(checkpoint_dir=checkpoint_dir, device="cpu", **kwargs).fit(train_x, train_y, eval_set=(val_x, val_y))
"""


def make_data(seed, n, *, min_len=MIN_LEN, max_len=MAX_LEN):
    rng = np.random.default_rng(seed)
    seqs = [
        rng.normal(size=(int(rng.integers(min_len, max_len)), 46)).astype(np.float32)
        for _ in range(n)
    ]
    targets = rng.normal(size=(n, 11)) * np.arange(1, 12) + 10.0
    return seqs, targets


def write_data(folder: Path) -> Path:
    seqs, targets = make_data(0, N_TRAIN + N_VAL)
    folder.mkdir()
    for name, rows in (("train", range(N_TRAIN)), ("val", range(N_TRAIN, N_TRAIN + N_VAL))):
        for i in rows:
            np.save(folder / f"{name}_seq_{i:03d}.npy", seqs[i])
        np.save(folder / f"{name}_targets.npy", targets[list(rows)])
    return folder


def start_worker(data: Path, checkpoint_dir: Path, log: Path, *, epochs: int) -> subprocess.Popen:
    kwargs = {**MODEL, "epochs": epochs, "random_state": SEED}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the worker
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, str(data), str(checkpoint_dir), json.dumps(kwargs)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
        )


def finish(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"training worker ran over {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def epochs_done(checkpoint_dir: Path) -> int:
    """Epochs recorded so far; history.csv is replaced atomically after last.pt each epoch."""
    try:
        return len(pd.read_csv(checkpoint_dir / "history.csv"))
    except FileNotFoundError:
        return 0


def wait_until(condition, proc: subprocess.Popen, log: Path, *, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"no {what} after {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)  # a poll interval, not a wait for something to happen


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def without_seconds(history) -> pd.DataFrame:
    return pd.DataFrame(history).drop(columns="seconds")


def assert_same_training(expected: Path, got: Path) -> None:
    """Bit-identical final weights, optimizer and RNG states, best checkpoint and history."""
    a, b = load(expected / "last.pt"), load(got / "last.pt")
    assert a["epoch"] == b["epoch"] and a["best_epoch"] == b["best_epoch"]
    assert a["best_val_loss"] == b["best_val_loss"]
    assert a["model_state"].keys() == b["model_state"].keys()
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key
    for key, state in a["optimizer_state"]["state"].items():
        for name in state:
            assert torch.equal(state[name], b["optimizer_state"]["state"][key][name]), (key, name)
    assert torch.equal(a["rng_states"]["torch"], b["rng_states"]["torch"])
    pd.testing.assert_frame_equal(without_seconds(a["history"]), without_seconds(b["history"]))
    pd.testing.assert_frame_equal(
        pd.read_csv(expected / "history.csv").drop(columns="seconds"),
        pd.read_csv(got / "history.csv").drop(columns="seconds"),
    )
    best_a, best_b = load(expected / "best.pt"), load(got / "best.pt")
    assert best_a["epoch"] == best_b["epoch"]
    for key in best_a["model_state"]:
        assert torch.equal(best_a["model_state"][key], best_b["model_state"][key]), key
    assert sorted(p.name for p in got.iterdir()) == ["best.pt", "history.csv", "last.pt"]


# ------------------------------------------------------------------------- kill -9


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups and SIGKILL")
def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    data = write_data(tmp_path / "data")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full = start_worker(data, full_dir, tmp_path / "full.log", epochs=EPOCHS)
    try:
        log = tmp_path / "killed.log"
        victim = start_worker(data, killed_dir, log, epochs=EPOCHS)
        wait_until(lambda: epochs_done(killed_dir) >= 1, victim, log, what="first checkpoint")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=TIMEOUT_S)
        assert victim.returncode == -signal.SIGKILL, (
            f"worker ended on its own ({victim.returncode}) before the kill: "
            f"epochs are too fast for this test\n{log.read_text()[-3000:]}"
        )
        stopped_at = load(killed_dir / "last.pt")["epoch"]
        assert 1 <= stopped_at < EPOCHS, f"killed after {stopped_at} of {EPOCHS} epochs"

        log = tmp_path / "resumed.log"
        text = finish(start_worker(data, killed_dir, log, epochs=EPOCHS), log)
        assert f"at epoch {stopped_at + 1}" in text  # it resumed, it did not start over
        finish(full, tmp_path / "full.log")
    finally:
        if full.poll() is None:
            os.killpg(full.pid, signal.SIGKILL)
            full.wait()

    assert load(killed_dir / "last.pt")["epoch"] == EPOCHS
    assert_same_training(full_dir, killed_dir)


# --------------------------------------------------------------- torn and stray files

SMALL = {**MODEL, "random_state": SEED}


def small_run(checkpoint_dir: Path, *, epochs: int, **kwargs) -> train.TrainResult:
    seqs, targets = make_data(1, 12, min_len=10, max_len=40)
    args = (seqs[:9], targets[:9], seqs[9:], targets[9:])
    return train_gru_with(*args, epochs=epochs, checkpoint_dir=checkpoint_dir, **{**SMALL, **kwargs})


def cut(path: Path, fraction: float) -> None:
    """Keep the first ``fraction`` of the file's bytes, as a torn write would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fraction", [0.5, 0.0])
def test_torn_last_checkpoint_resumes_from_best_and_stray_temp_files_are_ignored(
    tmp_path, caplog, fraction
):
    small_run(tmp_path / "full", epochs=4)
    torn = tmp_path / "torn"
    small_run(torn, epochs=3)
    cut(torn / "last.pt", fraction)
    # Complete-looking temporary files of a writer killed before its rename: a later epoch
    # of another seed, and a torn one. Neither may be read.
    small_run(tmp_path / "other", epochs=4, random_state=SEED + 1)
    shutil.copyfile(tmp_path / "other/last.pt", torn / ".last.pt.k1ll3d.tmp")
    shutil.copyfile(tmp_path / "other/best.pt", torn / ".best.pt.k1ll3d.tmp")
    (torn / ".history.csv.k1ll3d.tmp").write_text("epoch,train_loss\n1,0.")

    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        result = small_run(torn, epochs=4)
    assert "unreadable checkpoint" in caplog.text and "resuming from" in caplog.text
    assert result.history["epoch"].tolist() == [1, 2, 3, 4]
    assert_same_training(tmp_path / "full", torn)  # also: no temporary file is left


def test_torn_last_checkpoint_matches_when_nothing_is_left_to_train(tmp_path):
    small_run(tmp_path / "full", epochs=3)
    torn = tmp_path / "torn"
    small_run(torn, epochs=3)
    best_epoch = load(torn / "best.pt")["epoch"]
    cut(torn / "last.pt", 0.5)
    result = small_run(torn, epochs=3)
    # Epochs after the best one are trained again from best.pt's RNG states: same result.
    assert result.history["epoch"].tolist() == [1, 2, 3] and result.best_epoch == best_epoch
    assert_same_training(tmp_path / "full", torn)


def test_unreadable_checkpoints_raise_a_clear_error(tmp_path):
    small_run(tmp_path, epochs=2)
    cut(tmp_path / "last.pt", 0.5)
    cut(tmp_path / "best.pt", 0.5)
    with pytest.raises(train.CheckpointError, match="unreadable checkpoint.*resume=False"):
        small_run(tmp_path, epochs=3)
    with pytest.raises(train.CheckpointError, match=r"best\.pt: unreadable checkpoint"):
        train.load_checkpoint(tmp_path / "best.pt", device="cpu")

    (tmp_path / "best.pt").unlink()
    with pytest.raises(train.CheckpointError, match="no best.pt to fall back to"):
        small_run(tmp_path, epochs=3)

    torch.save({"weights": torch.zeros(3)}, tmp_path / "last.pt")  # a .pt, but not ours
    with pytest.raises(train.CheckpointError, match="not a train_gru checkpoint"):
        train.load_checkpoint(tmp_path / "last.pt", device="cpu")

    fresh = small_run(tmp_path, epochs=1, resume=False)  # the documented way out
    assert fresh.history["epoch"].tolist() == [1]
    assert load(tmp_path / "last.pt")["epoch"] == 1


def test_a_kill_between_last_and_best_is_repaired_on_resume_even_when_finished(tmp_path, monkeypatch):
    """``last.pt`` is renamed before ``best.pt``: a run killed between the two renames leaves
    ``best_epoch`` recorded while ``best.pt`` holds an older epoch. The next resume (of a
    finished run too) puts the right epoch in ``best.pt``."""
    seqs, targets = make_data(3, 8, min_len=10, max_len=20)
    args = (seqs, targets, seqs, targets)  # validation = training: every epoch improves
    settings = {**SMALL, "lr": 1e-2, "dropout": 0.0}
    full = train_gru_with(*args, epochs=3, checkpoint_dir=tmp_path / "full", **settings)
    assert full.history["is_best"].all()

    real = train.atomic.write_with
    calls = []

    def killed_before_best(path, write):
        calls.append(Path(path).name)
        if Path(path).name == "best.pt" and calls.count("last.pt") == 3:
            raise KeyboardInterrupt("killed between the renames")
        return real(path, write)

    monkeypatch.setattr(train.atomic, "write_with", killed_before_best)
    with pytest.raises(KeyboardInterrupt):
        train_gru_with(*args, epochs=3, checkpoint_dir=tmp_path / "cut", **settings)
    monkeypatch.setattr(train.atomic, "write_with", real)
    cut = tmp_path / "cut"
    assert load(cut / "last.pt")["best_epoch"] == 3 and load(cut / "best.pt")["epoch"] == 2  # the window

    resumed = train_gru_with(*args, epochs=3, checkpoint_dir=cut, **settings)  # finished: trains nothing
    assert resumed.history["epoch"].tolist() == [1, 2, 3]
    assert load(cut / "best.pt")["epoch"] == 3
    a, b = load(tmp_path / "full" / "best.pt")["model_state"], load(cut / "best.pt")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
