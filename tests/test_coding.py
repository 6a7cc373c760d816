"""Target coding of the GRU (lib/audioreg/models/coding.py) and its target-aware training."""

import numpy as np
import pytest
import torch

from audioreg.models import GRURegressor
from audioreg.models.coding import TargetCoding, parse_loss_weights
from audioreg.models.train import KeyRotation, SequenceDataset
from audioreg.targets import TARGETS

J = {t: j for j, t in enumerate(TARGETS)}


def labels(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 1, size=(n, 11))
    y[:, J["tempo"]] = rng.uniform(60, 180, n)
    y[:, J["loudness"]] = rng.uniform(-20, -3, n)
    y[:, J["time_signature"]] = rng.choice([3, 4, 5], n)
    y[:, J["key"]] = rng.integers(0, 12, n)
    return y, rng.integers(0, 2, n).astype(float)


def test_plain_coding_is_the_eleven_targets_and_its_loss_the_mse():
    coding = TargetCoding()
    y, _ = labels(9)
    coded = coding.encode(y)
    np.testing.assert_array_equal(coded, y)
    assert coding.heads == tuple((t, 1) for t in TARGETS) and coding.n_outputs == 11
    out, ref = torch.randn(9, 11), torch.randn(9, 11)
    loss = coding.combine(*coding.loss_terms(out, ref))
    assert float(loss) == pytest.approx(float(torch.nn.functional.mse_loss(out, ref)), rel=1e-6)


def test_masked_loss_leaves_missing_labels_out_and_keeps_the_rest_of_the_row():
    coding = TargetCoding()
    out, ref = torch.randn(6, 11), torch.randn(6, 11)
    ref[0, 3] = ref[2, 3] = ref[4, 0] = float("nan")
    sums, counts = coding.loss_terms(out, ref)
    assert counts[3] == 4 and counts[0] == 5 and counts[1] == 6
    keep = torch.isfinite(ref[:, 3])
    assert float(sums[3] / counts[3]) == pytest.approx(float(((out[keep, 3] - ref[keep, 3]) ** 2).mean()), rel=1e-6)
    assert torch.isfinite(coding.combine(sums, counts))
    # a target with no label in the batch is left out of the mean, not counted as zero error
    ref[:, 5] = float("nan")
    sums, counts = coding.loss_terms(out, ref)
    per = (sums / counts.clamp(min=1)).tolist()
    assert float(coding.combine(sums, counts)) == pytest.approx(np.mean([p for j, p in enumerate(per) if j != 5]), rel=1e-6)


def test_target_aware_coding_round_trips_to_spotify_encodings():
    coding = TargetCoding(key_classes=True, meter_classes=True, tempo_log2=True)
    y, mode = labels(12)
    coded = coding.encode(y, mode)
    assert coding.columns[-3:] == ("key", "mode", "time_signature")
    np.testing.assert_allclose(coded[:, coding.columns.index("tempo")], np.log2(y[:, J["tempo"]]))
    assert coding.n_outputs == 9 + 24 + 5
    norm = coding.fit(coded)
    # outputs that put all the mass on the true classes and the true z-scores decode to the labels
    z = np.zeros((12, coding.n_outputs))
    n_reg = len(coding.regressed)
    z[:, :n_reg] = (coded[:, :n_reg] - norm["target_mean"][:n_reg]) / norm["target_std"][:n_reg]
    cls = (y[:, J["key"]] + 12 * (1 - mode)).astype(int)
    z[np.arange(12), n_reg + cls] = 30.0
    z[np.arange(12), n_reg + 24 + (y[:, J["time_signature"]] - 3).astype(int)] = 30.0
    out = coding.decode(z, norm)
    np.testing.assert_allclose(out[list(TARGETS)].to_numpy(), y, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(out["mode"].to_numpy(), mode)
    assert np.all(out[["key_prob", "mode_prob", "time_signature_prob"]].to_numpy() > 0.999)
    # invalid labels are missing for their coding, not errors
    bad = y[:2].copy()
    bad[0, J["key"]], bad[1, J["time_signature"]], bad[1, J["tempo"]] = -1, 1, 0
    coded = coding.encode(bad, np.array([np.nan, 1.0]))
    assert np.isnan(coded[0, coding.columns.index("key")]) and np.isnan(coded[0, coding.columns.index("mode")])
    assert np.isnan(coded[1, -1]) and np.isnan(coded[1, coding.columns.index("tempo")])


def test_key_with_unknown_mode_is_scored_on_its_tonic_alone():
    coding = TargetCoding(key_classes=True)
    n_reg = len(coding.regressed)
    logits = torch.randn(1, coding.n_outputs)
    y = torch.full((1, len(coding.columns)), float("nan"))
    y[0, :n_reg] = 0.0
    y[0, n_reg] = 4.0  # E, mode unknown
    sums, _ = coding.loss_terms(logits, y)
    p = torch.softmax(logits[0, n_reg:], dim=0)
    assert float(sums[-1]) == pytest.approx(float(-torch.log(p[4] + p[16])), rel=1e-5)
    y[0, n_reg + 1] = 0.0  # E minor
    sums, _ = coding.loss_terms(logits, y)
    assert float(sums[-1]) == pytest.approx(float(-torch.log(p[16])), rel=1e-5)


def test_loss_weights_parse_and_reject_unknown_targets():
    assert parse_loss_weights(" tempo:2, key:0.5 ") == {"tempo": 2.0, "key": 0.5}
    assert parse_loss_weights("") == {}
    for bad in ("tempi:2", "tempo", "tempo:x", "tempo:-1"):
        with pytest.raises(ValueError, match="loss_weights"):
            parse_loss_weights(bad)
    coding = TargetCoding(loss_weights="tempo:3")
    sums, counts = torch.ones(11), torch.ones(11)
    sums[J["tempo"]] = 5.0
    assert float(coding.combine(sums, counts)) == pytest.approx((10 * 1 + 3 * 5) / 13)


def test_key_rotation_moves_chroma_and_key_together_reproducibly():
    from audioreg.features import frames

    coding = TargetCoding(key_classes=True)
    rng = np.random.default_rng(0)
    x = rng.random((20, 47)).astype(np.float32)
    y, mode = labels(1)
    coded = coding.encode(y, mode)[0]
    rot = KeyRotation(coding, columns=["lufs"])
    x2, y2 = rot(x, coded, np.random.default_rng([3, 1, 0]))
    k = int((y2[coding.columns.index("key")] - coded[coding.columns.index("key")]) % 12)
    assert k != 0  # this seed draws a rotation
    chroma = slice(frames.N_MFCC, frames.N_MFCC + 12)
    np.testing.assert_allclose(x2[:, chroma], np.roll(x[:, chroma], k, axis=1))
    np.testing.assert_array_equal(x2[:, :frames.N_MFCC], x[:, :frames.N_MFCC])
    np.testing.assert_array_equal(x2[:, 46], x[:, 46])
    assert y2[coding.columns.index("mode")] == coded[coding.columns.index("mode")]
    ds = SequenceDataset([x], coded[None], augment=rot, random_state=3)
    ds.set_epoch(1)
    a, b = ds[0], ds[0]
    assert torch.equal(a[0], b[0])  # same epoch, same draw
    ds.set_epoch(2)
    assert not torch.equal(a[0], ds[0][0]) or not torch.equal(a[1], ds[0][1])


def test_target_aware_gru_trains_with_missing_labels_and_predicts_spotify_encodings(tmp_path):
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(10, 30)), 46)).astype(np.float32) for _ in range(16)]
    y, mode = labels(16)
    y[0, J["tempo"]] = np.nan
    y[1, :] = np.nan  # a row without labels still runs
    y[1, J["energy"]] = 0.5
    mode[2] = np.nan
    Y = np.column_stack([y, mode])
    est = GRURegressor(hidden_size=8, num_layers=1, batch_size=4, frame_pool=2, epochs=2, key_classes=True,
                       meter_classes=True, tempo_log2=True, per_target_heads=True, key_rotation=True,
                       loss_weights="tempo:2", checkpoint_dir=tmp_path, device="cpu")
    est.fit(seqs[:12], Y[:12], eval_set=(seqs[12:], Y[12:]))
    assert np.all(np.isfinite(est.history_[["train_loss", "val_loss"]].to_numpy()))
    table = est.predict_table(seqs)
    assert set(table["key"]) <= set(range(12)) and set(table["mode"]) <= {0.0, 1.0}
    assert set(table["time_signature"]) <= {3.0, 4.0, 5.0, 6.0, 7.0}
    probs = table[["key_prob", "mode_prob", "time_signature_prob"]].to_numpy()
    assert np.all((probs > 0) & (probs <= 1))
    assert np.all(table["tempo"] > 0)
    assert est.predict(seqs).shape == (16, 11)
    again = GRURegressor.from_checkpoint(est.best_checkpoint_, device="cpu")
    assert again.key_classes and again.per_target_heads and again.loss_weights == "tempo:2"
    np.testing.assert_array_equal(again.predict(seqs), est.predict(seqs))
    # the plain estimator's table has no mode and no probabilities
    plain = GRURegressor(hidden_size=8, num_layers=1, batch_size=4, frame_pool=2, epochs=1,
                         checkpoint_dir=tmp_path / "plain", device="cpu").fit(seqs[:12], y[:12], eval_set=(seqs[12:], y[12:]))
    assert plain.predict_table(seqs)[["mode", "key_prob"]].isna().all().all()
