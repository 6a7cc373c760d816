"""Tests of audioreg.models.train: data pipeline, sampler, training loop, checkpoints, prediction."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audioreg.models import train
from audioreg.models import GRUNet, GRURegressor
from audioreg.targets import TARGETS
from conftest import train_gru_with


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_data(seed, n, *, n_features=46, n_targets=11, min_len=10, max_len=40):
    rng = np.random.default_rng(seed)
    seqs = [
        rng.normal(size=(int(rng.integers(min_len, max_len)), n_features)).astype(np.float32)
        for _ in range(n)
    ]
    targets = rng.normal(size=(n, n_targets)) * np.arange(1, n_targets + 1) + 10.0
    return seqs, targets


TINY = {"hidden_size": 8, "num_layers": 2, "dropout": 0.3, "batch_size": 4, "frame_pool": 2}


# ------------------------------------------------------------------------------ data


def test_pool_frames_arithmetic():
    frames = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    pooled = train.pool_frames(frames, frame_pool=4)
    expected = np.stack([frames[0:4].mean(0), frames[4:8].mean(0), frames[8:10].mean(0)])
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(train.pool_frames(frames, frame_pool=1), frames)
    assert train.pool_frames(frames, frame_pool=10).shape == (1, 2)
    assert train.pool_frames(frames, frame_pool=64).shape == (1, 2)


@settings(max_examples=50, deadline=None)
@given(n_frames=st.integers(1, 200), frame_pool=st.integers(1, 20))
def test_pool_frames_lengths_and_total(n_frames, frame_pool):
    frames = np.random.default_rng(n_frames).normal(size=(n_frames, 3))
    pooled = train.pool_frames(frames, frame_pool=frame_pool)
    assert len(pooled) == train.pooled_length(n_frames, frame_pool=frame_pool)
    assert len(pooled) == -(-n_frames // frame_pool)
    # Block means weighted by block sizes give back the frame sum.
    sizes = np.minimum(frame_pool, n_frames - frame_pool * np.arange(len(pooled)))
    np.testing.assert_allclose((pooled * sizes[:, None]).sum(0), frames.sum(0), atol=1e-9)


class ShapeOnly:
    """A sequence that has a shape but must not be read."""

    def __init__(self, n_frames):
        self.shape = (n_frames, 46)
        self.ndim = 2

    def __getitem__(self, item):
        raise AssertionError("data was read")

    def __array__(self, *args, **kwargs):
        raise AssertionError("data was read")


def test_dataset_lengths_come_from_shapes():
    dataset = train.SequenceDataset([ShapeOnly(n) for n in (1, 8, 9, 1292)], frame_pool=8)
    np.testing.assert_array_equal(dataset.lengths, [1, 1, 2, 162])
    with pytest.raises(AssertionError, match="data was read"):
        dataset[0]


def test_dataset_items_are_pooled_and_normalized(tmp_path):
    seqs, targets = make_data(0, 3)
    np.save(tmp_path / "s.npy", seqs[1])
    seqs[1] = np.load(tmp_path / "s.npy", mmap_mode="r")
    norm = train.fit_normalizers(seqs, targets)
    dataset = train.SequenceDataset(seqs, targets, frame_pool=3, **norm)
    x, y = dataset[1]
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    assert x.shape == (-(-len(seqs[1]) // 3), 46)
    expected = (train.pool_frames(seqs[1], frame_pool=3) - norm["feature_mean"]) / norm[
        "feature_std"
    ]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        y.numpy(), (targets[1] - targets.mean(0)) / targets.std(0), rtol=1e-5, atol=1e-6
    )
    unlabelled = train.SequenceDataset(seqs, frame_pool=3, **norm)
    assert unlabelled[0][1] is None


def test_fit_normalizers_streams_over_all_frames():
    seqs, targets = make_data(1, 5)
    targets[:, 2] = 4.0  # a constant target (e.g. time signature on a small split)
    seqs[0][:, 7] = 0.0
    for s in seqs:
        s[:, 7] = 0.0  # a constant feature
    norm = train.fit_normalizers(seqs, targets)
    frames = np.concatenate(seqs).astype(np.float64)
    np.testing.assert_allclose(norm["feature_mean"], frames.mean(0), rtol=1e-10, atol=1e-12)
    expected_std = frames.std(0)
    expected_std[7] = 1.0
    np.testing.assert_allclose(norm["feature_std"], expected_std, rtol=1e-10)
    np.testing.assert_allclose(norm["target_mean"], targets.mean(0))
    assert norm["target_std"][2] == 1.0 and np.all(norm["target_std"] > 0)


def test_collate_padded():
    items = [(torch.ones(3, 2), torch.zeros(4)), (torch.full((5, 2), 2.0), torch.ones(4))]
    x, lengths, y = train.collate_padded(items)
    assert x.shape == (2, 5, 2) and y.shape == (2, 4)
    assert lengths.tolist() == [3, 5] and lengths.dtype == torch.int64
    assert torch.all(x[0, 3:] == 0) and torch.all(x[0, :3] == 1)
    assert train.collate_padded([(torch.ones(2, 2), None)])[2] is None


# --------------------------------------------------------------------------- sampler


def test_sampler_groups_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 2000, size=400)
    sampler = train.LengthBucketSampler(lengths, batch_size=8, random_state=0, pool_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(400))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_batches = rng.permutation(400).reshape(-1, 8)
    random_spread = np.mean([np.ptp(lengths[b]) for b in random_batches])
    assert spread < 0.2 * random_spread
    # Batch order is shuffled, not ascending pool by pool.
    means = np.array([lengths[b].mean() for b in batches])
    assert np.mean(np.diff(means) > 0) < 0.75


def test_sampler_is_reproducible_per_epoch():
    lengths = np.random.default_rng(1).integers(1, 100, size=103)

    def batches(seed, epoch):
        sampler = train.LengthBucketSampler(
            lengths, batch_size=4, random_state=seed, pool_batches=3
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    assert batches(0, 3) == batches(0, 3)
    assert batches(0, 3) != batches(0, 4)
    assert batches(0, 3) != batches(1, 3)
    sampler = train.LengthBucketSampler(lengths, batch_size=4, random_state=0, pool_batches=3)
    for epoch in (1, 2, 3):
        sampler.set_epoch(epoch)
        assert len(list(sampler)) == len(sampler)
    restored = train.LengthBucketSampler(lengths, batch_size=4, random_state=5, pool_batches=3)
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == batches(0, 3)


def test_sampler_without_shuffle_is_length_sorted():
    lengths = [5, 1, 9, 3, 7]
    sampler = train.LengthBucketSampler(lengths, batch_size=2, shuffle=False)
    assert list(sampler) == [[1, 3], [0, 4], [2]]
    assert len(sampler) == 3


# -------------------------------------------------------------------------- training


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_gru_overfits_eight_samples(tmp_path):
    seqs, targets = make_data(2, 8, min_len=15, max_len=30)
    result = train_gru_with(
        seqs,
        targets,
        seqs,
        targets,
        hidden_size=64,
        num_layers=1,
        dropout=0.0,
        lr=1e-2,
        epochs=60,
        batch_size=8,
        checkpoint_dir=tmp_path,
        grad_clip=None,
    )
    losses = result.history["train_loss"].to_numpy()
    assert losses[-1] < 0.1 * losses[0]
    assert result.history["val_loss"].min() < 0.05  # train data as validation: near zero


def test_train_gru_writes_history_and_checkpoints(tmp_path):
    seqs, targets = make_data(3, 14)
    params = {"seed": 3, "dropout": 0.3, "features_dir": tmp_path / "f", "grid": (1, 2)}
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    py_state = random.getstate()
    result = train_gru_with(
        seqs[:10], targets[:10], seqs[10:], targets[10:], epochs=3, checkpoint_dir=tmp_path,
        params=params, random_state=3, **TINY,
    )
    # The caller's global RNGs are untouched.
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state

    history = result.history
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds", "is_best",
                                     *[f"val_{t}" for t in TARGETS]]  # each target's own validation loss
    assert history["epoch"].tolist() == [1, 2, 3]
    best = history.loc[history["val_loss"].idxmin(), "epoch"]
    assert result.best_epoch == best and history["is_best"].iloc[0]
    on_disk = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "history.csv", "last.pt"]

    last = weights(result.last_checkpoint)
    assert last["epoch"] == 3
    assert last["params"] == {"seed": 3, "dropout": 0.3, "features_dir": str(tmp_path / "f"),
                              "grid": [1, 2]}
    assert set(last["rng_states"]) == {"torch", "cuda", "numpy", "python", "sampler"}
    assert last["rng_states"]["sampler"] == {"random_state": 3, "epoch": 3}
    assert last["model_config"]["hidden_size"] == 8 and last["frame_pool"] == 2
    assert {"model_state", "optimizer_state", "normalizers", "history"} <= set(last)
    assert weights(result.best_checkpoint)["epoch"] == result.best_epoch


def test_train_gru_is_reproducible_and_seed_dependent(tmp_path):
    seqs, targets = make_data(4, 12)
    args = (seqs[:8], targets[:8], seqs[8:], targets[8:])
    a = train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path / "a", random_state=1, **TINY)
    b = train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path / "b", random_state=1, **TINY)
    c = train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path / "c", random_state=2, **TINY)
    wa, wb, wc = (weights(r.last_checkpoint)["model_state"] for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_matches_uninterrupted_run(tmp_path):
    seqs, targets = make_data(5, 14)
    args = (seqs[:10], targets[:10], seqs[10:], targets[10:])
    full = train_gru_with(*args, epochs=4, checkpoint_dir=tmp_path / "full", **TINY)
    train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path / "split", **TINY)
    resumed = train_gru_with(*args, epochs=4, checkpoint_dir=tmp_path / "split", **TINY)

    a, b = weights(full.last_checkpoint), weights(resumed.last_checkpoint)
    assert a["model_state"].keys() == b["model_state"].keys()
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key
    for key, state in a["optimizer_state"]["state"].items():
        for name in state:
            assert torch.equal(state[name], b["optimizer_state"]["state"][key][name])
    assert torch.equal(a["rng_states"]["torch"], b["rng_states"]["torch"])
    cols = ["epoch", "train_loss", "val_loss", "is_best"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    assert resumed.best_epoch == full.best_epoch

    # Without resume, the same directory starts over.
    fresh = train_gru_with(
        *args, epochs=1, checkpoint_dir=tmp_path / "split", resume=False, **TINY
    )
    assert fresh.history["epoch"].tolist() == [1]


def test_resume_refuses_a_different_model(tmp_path):
    seqs, targets = make_data(6, 8)
    args = (seqs[:6], targets[:6], seqs[6:], targets[6:])
    train_gru_with(*args, epochs=1, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="model config"):
        train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path, **{**TINY, "hidden_size": 9})
    with pytest.raises(ValueError, match="frame_pool"):
        train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path, **{**TINY, "frame_pool": 3})


# ------------------------------------------------------------------------- prediction


def test_predict_gru_returns_raw_units(tmp_path):
    seqs, targets = make_data(7, 12)
    result = train_gru_with(
        seqs[:8], targets[:8], seqs[8:], targets[8:], epochs=1, checkpoint_dir=tmp_path, **TINY
    )
    model, checkpoint = train.load_checkpoint(result.best_checkpoint, device="cpu")
    assert isinstance(model, GRUNet) and not model.training
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()  # predicts 0 in z-space
    pred = train.predict_gru((model, checkpoint), seqs, device="cpu")
    assert pred.shape == (12, 11)
    np.testing.assert_allclose(pred, np.tile(targets[:8].mean(0), (12, 1)), rtol=1e-6)
    with torch.no_grad():
        model.head.bias.fill_(1.0)  # one training std above the mean
    pred = train.predict_gru((model, checkpoint), seqs[:3], device="cpu")
    np.testing.assert_allclose(pred[0], targets[:8].mean(0) + targets[:8].std(0), rtol=1e-6)


def test_a_target_no_training_row_is_labelled_for_predicts_nan(tmp_path):
    """Partial labels: the masked loss trains each target on its labelled rows; a target with
    none (an absent column) has an untrained head, so it predicts nothing rather than noise."""
    seqs, targets = make_data(8, 12)
    targets[:8, 4] = np.nan  # no training label for target 4
    targets[:4, 2] = np.nan  # target 2 labelled on half the training rows
    result = train_gru_with(seqs[:8], targets[:8], seqs[8:], targets[8:], epochs=1, checkpoint_dir=tmp_path, **TINY)
    model, checkpoint = train.load_checkpoint(result.best_checkpoint, device="cpu")
    assert checkpoint["label_counts"]["liveness"] == 0 and checkpoint["label_counts"]["valence"] == 4
    pred = train.predict_gru((model, checkpoint), seqs, device="cpu")
    assert np.isnan(pred[:, 4]).all() and np.isfinite(np.delete(pred, 4, axis=1)).all()


def test_predict_gru_from_path_matches_model_in_order(tmp_path):
    seqs, targets = make_data(8, 12, min_len=3, max_len=60)
    result = train_gru_with(
        seqs[:8], targets[:8], seqs[8:], targets[8:], epochs=1, checkpoint_dir=tmp_path, **TINY
    )
    pred = train.predict_gru(result.best_checkpoint, seqs, batch_size=5)
    model, checkpoint = train.load_checkpoint(result.best_checkpoint)
    norm = {k: v.numpy() for k, v in checkpoint["normalizers"].items()}
    dataset = train.SequenceDataset(seqs, frame_pool=2, **norm)
    for i in (0, 5, 11):  # one at a time: the original order is kept
        x = dataset[i][0]
        with torch.no_grad():
            z = model(x[None], torch.tensor([len(x)]))[0].double().numpy()
        np.testing.assert_allclose(pred[i], z * norm["target_std"] + norm["target_mean"], rtol=1e-5)
    with pytest.raises(TypeError):
        train.predict_gru(model, seqs)


def test_cpu_training_and_prediction_use_one_thread_and_restore_the_callers(tmp_path, monkeypatch):
    """Intra-op threads stall when another process shares the cores: training and prediction on
    the CPU run with ``CPU_THREADS`` (1), whatever the caller set, and give the caller's count back."""
    seen = []
    real_epoch, real_forward = train._train_one_epoch, train.GRUNet.forward

    def epoch(*args, **kwargs):
        seen.append(("train", torch.get_num_threads()))
        return real_epoch(*args, **kwargs)

    def forward(self, *args, **kwargs):
        if not self.training:
            seen.append(("predict", torch.get_num_threads()))
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(train, "_train_one_epoch", epoch)
    monkeypatch.setattr(train.GRUNet, "forward", forward)
    seqs, targets = make_data(4, 6)
    torch.set_num_threads(2)  # restored by the one_torch_thread fixture
    result = train_gru_with(seqs, targets, seqs, targets, epochs=2, checkpoint_dir=tmp_path, **TINY)
    train.predict_gru(result.best_checkpoint, seqs)
    assert torch.get_num_threads() == 2
    assert {kind for kind, _ in seen} == {"train", "predict"}
    assert all(n == train.CPU_THREADS == 1 for _, n in seen), seen


# -------------------------------------------------------------------------- the estimator


def test_gru_estimator_follows_the_scikit_learn_contract(tmp_path):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    seqs, targets = make_data(9, 12)
    est = GRURegressor(**TINY, epochs=2, random_state=5, checkpoint_dir=tmp_path / "ck", device="cpu")
    assert clone(est).get_params() == est.get_params()
    assert not any(k.endswith("_") for k in vars(est))  # __init__ only stores its settings
    with pytest.raises(NotFittedError):
        est.predict(seqs)
    assert est.fit(seqs[:8], targets[:8], eval_set=(seqs[8:], targets[8:])) is est
    assert est.get_params()["hidden_size"] == TINY["hidden_size"]  # fit changed no setting
    assert (est.n_features_in_, est.n_outputs_) == (46, 11)
    assert est.history_["epoch"].tolist() == [1, 2] and est.best_checkpoint_ == tmp_path / "ck" / "best.pt"
    # the same training as the loop called with the configs these settings make
    loop = train_gru_with(seqs[:8], targets[:8], seqs[8:], targets[8:], checkpoint_dir=tmp_path / "loop",
                          **TINY, epochs=2, random_state=5)
    pred = est.predict(seqs)
    np.testing.assert_array_equal(pred, train.predict_gru(loop.best_checkpoint, seqs, device="cpu"))
    # a fitted estimator again from its checkpoint, as `audioreg predict` needs
    again = GRURegressor.from_checkpoint(est.best_checkpoint_, device="cpu")
    assert again.get_params()["frame_pool"] == TINY["frame_pool"] and again.best_epoch_ == est.best_epoch_
    np.testing.assert_array_equal(again.predict(seqs), pred)


def test_gru_estimator_holds_out_validation_tracks_without_an_eval_set(tmp_path):
    seqs, targets = make_data(10, 20)
    est = GRURegressor(**TINY, epochs=1, random_state=0, checkpoint_dir=tmp_path, device="cpu").fit(seqs, targets)
    train_rows = np.random.default_rng(0).permutation(20)[3:]  # 15 % of 20 tracks held out
    stored = weights(est.best_checkpoint_)["normalizers"]["target_mean"].numpy()
    np.testing.assert_allclose(stored, targets[train_rows].mean(0))
    assert not np.allclose(stored, targets.mean(0))


def test_gru_estimator_from_run_parameters():
    est = GRURegressor.from_params({"seed": 7, "lr": 0.01, "hidden_size": 32, "rf_cv": 5, "metadata_path": "x"})
    assert est.get_params()["random_state"] == 7 and est.lr == 0.01 and est.hidden_size == 32
    net, config = est.configs(n_features=46)
    assert (net.hidden_size, net.n_features, config.lr, config.random_state) == (32, 46, 0.01, 7)


def test_a_run_asked_for_fewer_epochs_than_its_folder_holds_stops_naming_epochs(tmp_path):
    """It never returns the longer run's model and history as if it were the shorter one."""
    seqs, targets = make_data(11, 10)
    args = (seqs[:7], targets[:7], seqs[7:], targets[7:])
    train_gru_with(*args, epochs=3, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match=r"holds a run of 3 epochs and this run asks for epochs=2"):
        train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path, **TINY)
    assert train_gru_with(*args, epochs=3, checkpoint_dir=tmp_path, **TINY).history["epoch"].tolist() == [1, 2, 3]
    fresh = train_gru_with(*args, epochs=2, checkpoint_dir=tmp_path, resume=False, **TINY)
    assert fresh.history["epoch"].tolist() == [1, 2]
