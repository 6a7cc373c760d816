"""A damaged ``best.pt`` is never final: it is rebuilt from a verified ``last.pt`` when that holds
the best epoch, and otherwise the configuration is trained again (on the CPU to the same weights),
so ``best.pt`` is always the epoch chosen on validation, never the last epoch passed off as it.

Each fit is a 4-unit GRU on 12 tiny sequences (tens of milliseconds): seed 1's data reaches its
lowest validation loss at epoch 2 of 4 with ``lr=0.01`` and at epoch 4 with ``lr=0.001``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from audioreg import predict, store
from audioreg.models import GRURegressor, train
from conftest import train_gru_with

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {"hidden_size": 4, "num_layers": 1, "batch_size": 4, "frame_pool": 2, "device": "cpu", "epochs": 4}
BEST_BEFORE_LAST = {**SETTINGS, "lr": 0.01}  # best epoch 2 of 4: its weights are only in best.pt
BEST_IS_LAST = {**SETTINGS, "lr": 0.001}  # best epoch 4 of 4: last.pt is a byte-exact best.pt

DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(bytes(range(256)) * 16),
    "missing": lambda p: p.unlink(),
}
#: A complete checkpoint, but not the best epoch: last.pt copied over it.
WRONG_EPOCH = {"another epoch": lambda p: shutil.copyfile(p.with_name("last.pt"), p)}


def data():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(8, 20)), 5)).astype(np.float32) for _ in range(12)]
    return seqs, rng.normal(size=(12, 11))


def fit(params, settings) -> GRURegressor:
    """The GRU fit of notebook 05_gru: through the store, into its content-keyed folder."""
    seqs, Y = data()
    return store.fit_model(params, GRURegressor(**settings), seqs[:9], Y[:9], data_key="k",
                           eval_set=(seqs[9:], Y[9:]))


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def train_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "audioreg.models.train" and r.levelname == "WARNING"]


@pytest.mark.parametrize("damage", list(DAMAGE) + list(WRONG_EPOCH))
def test_rerunning_the_fit_trains_the_configuration_again_when_the_best_epoch_is_lost(tmp_path, caplog, damage):
    params = {"root": str(tmp_path), "run_id": "one"}
    first = fit(params, BEST_BEFORE_LAST)
    folder = first.best_checkpoint_.parent
    assert first.best_epoch_ == 2 and len(first.history_) == 4  # last.pt (epoch 4) does not hold the best weights
    best = weights(folder / "best.pt")
    {**DAMAGE, **WRONG_EPOCH}[damage](folder / "best.pt")

    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        again = fit({**params, "run_id": "two"}, BEST_BEFORE_LAST)  # 05_gru run again: no longer a permanent failure
    [warning] = train_warnings(caplog)
    assert str(folder / "best.pt") in warning and "anew" in warning
    # trained again from the seed: on the CPU the very same run, so the same best epoch and weights
    assert again.best_epoch_ == 2 and again.history_["epoch"].tolist() == [1, 2, 3, 4]
    assert_same_weights(best, weights(folder / "best.pt"))
    assert_same_weights(best, again.net_.state_dict())
    seqs, _ = data()
    np.testing.assert_array_equal(again.predict(seqs), first.predict(seqs))
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "history.csv", "last.pt", "meta.json"]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_rerunning_the_fit_copies_last_when_it_is_the_best_epoch(tmp_path, caplog, damage):
    params = {"root": str(tmp_path), "run_id": "one"}
    first = fit(params, BEST_IS_LAST)
    folder = first.best_checkpoint_.parent
    assert first.best_epoch_ == 4
    best, stamp = weights(folder / "best.pt"), (folder / "last.pt").stat().st_mtime_ns
    DAMAGE[damage](folder / "best.pt")

    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        again = fit({**params, "run_id": "two"}, BEST_IS_LAST)
    [warning] = train_warnings(caplog)
    assert str(folder / "best.pt") in warning and "copied from last.pt" in warning
    assert (folder / "last.pt").stat().st_mtime_ns == stamp  # nothing trained
    assert (folder / "best.pt").read_bytes() == (folder / "last.pt").read_bytes()
    assert_same_weights(best, again.net_.state_dict())


def test_an_unfinished_run_with_a_damaged_best_checkpoint_is_trained_anew(tmp_path, caplog):
    """Resuming would select only among the epochs still to come: the run starts over instead,
    and ends where an uninterrupted run ends."""
    seqs, Y = data()
    args = (seqs[:9], Y[:9], seqs[9:], Y[9:])
    settings = {k: v for k, v in BEST_BEFORE_LAST.items() if k not in ("device", "epochs")}
    full = train_gru_with(*args, epochs=4, checkpoint_dir=tmp_path / "full", **settings)
    cut = tmp_path / "cut"
    assert train_gru_with(*args, epochs=3, checkpoint_dir=cut, **settings).best_epoch == 2
    DAMAGE["truncated"](cut / "best.pt")

    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        result = train_gru_with(*args, epochs=4, checkpoint_dir=cut, **settings)
    [warning] = train_warnings(caplog)
    assert "unreadable checkpoint" in warning and "anew" in warning
    assert result.best_epoch == full.best_epoch == 2 and result.history["epoch"].tolist() == [1, 2, 3, 4]
    for name in ("best.pt", "last.pt"):
        assert_same_weights(weights(tmp_path / "full" / name), weights(cut / name))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_loading_a_run_repairs_best_from_last_when_that_is_the_best_epoch(tmp_path, caplog, damage):
    first = fit({"root": str(tmp_path), "run_id": "one"}, BEST_IS_LAST)
    folder = first.best_checkpoint_.parent
    best = weights(folder / "best.pt")
    DAMAGE[damage](folder / "best.pt")

    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        loaded = GRURegressor.from_checkpoint(folder / "best.pt", device="cpu")  # what `audioreg predict` loads
    [warning] = train_warnings(caplog)
    assert str(folder / "best.pt") in warning and "copied from last.pt" in warning
    assert loaded.best_epoch_ == 4
    assert_same_weights(best, loaded.net_.state_dict())
    assert_same_weights(best, weights(folder / "best.pt"))  # repaired on disk too


@pytest.mark.parametrize("damage", list(DAMAGE) + list(WRONG_EPOCH))
def test_loading_a_run_whose_best_epoch_is_lost_says_to_rerun_05_gru(tmp_path, damage):
    params = {"root": str(tmp_path), "run_id": "one"}
    first = fit(params, BEST_BEFORE_LAST)
    folder, run_dir = first.best_checkpoint_.parent, tmp_path / "runs" / "one"
    assert json.loads((run_dir / "gru" / "model.json").read_text())["model_dir"] == str(folder)
    {**DAMAGE, **WRONG_EPOCH}[damage](folder / "best.pt")

    # never last epoch's weights served as the validation-chosen ones
    with pytest.raises(train.CheckpointError, match=r"best\.pt.*epoch 2.*train"):
        GRURegressor.from_checkpoint(folder / "best.pt", device="cpu")
    with pytest.raises(train.CheckpointError, match=r"best\.pt.*--run-id one --only 05_gru"):
        predict.load(run_dir, "gru")  # audioreg predict / audioreg evaluate --run

    fit({**params, "run_id": "two"}, BEST_BEFORE_LAST)  # the advice works
    assert_same_weights(first.net_.state_dict(),
                        GRURegressor.from_checkpoint(folder / "best.pt", device="cpu").net_.state_dict())


def test_loading_from_a_folder_that_cannot_be_written_reads_last_when_it_is_the_best_epoch(tmp_path, caplog,
                                                                                           monkeypatch):
    folder = fit({"root": str(tmp_path), "run_id": "one"}, BEST_IS_LAST).best_checkpoint_.parent
    best = weights(folder / "best.pt")
    DAMAGE["truncated"](folder / "best.pt")

    def read_only(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(train.atomic, "write_with", read_only)
    with caplog.at_level("WARNING", logger="audioreg.models.train"):
        loaded = GRURegressor.from_checkpoint(folder / "best.pt", device="cpu")
    [warning] = train_warnings(caplog)
    assert "could not be rebuilt" in warning and "loaded last.pt instead" in warning
    assert loaded.best_epoch_ == 4
    assert_same_weights(best, loaded.net_.state_dict())
