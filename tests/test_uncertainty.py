"""The group bootstrap: intervals that cover what they should, move with whole groups, and
say "no difference shown" when the data cannot tell."""

import numpy as np
import pytest

from audioreg.judge import metrics, uncertainty


def test_weights_draw_whole_groups():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w = uncertainty.group_weights(groups, n_boot=200, random_state=1)
    assert w.shape == (200, 6)
    np.testing.assert_array_equal(w[:, 0], w[:, 1])  # one artist's tracks always together
    np.testing.assert_array_equal(w[:, 3], w[:, 5])
    assert np.all(w[:, [0, 2, 3]].sum(axis=1) == 3)  # three groups drawn per replicate
    with pytest.raises(ValueError, match="at least 2 groups"):
        uncertainty.group_weights(["x", "x"])


def _data(seed, n=60, noise=0.05):
    rng = np.random.default_rng(seed)
    train = rng.uniform(0, 1, (200, 2))
    test = rng.uniform(0, 1, (n, 2))
    good = test + rng.normal(0, noise, test.shape)
    return train, test, good, np.arange(n) // 2


def test_a_real_gain_is_shown_and_a_copy_of_the_baseline_is_not():
    train, test, good, groups = _data(0)
    base = metrics.mean_baseline(train, len(test), targets=("energy", "valence"))
    preds = {"mean baseline": base, "good": good, "same": base + 1e-12}
    res = uncertainty.bootstrap(test, preds, y_train=train, groups=groups, targets=("energy", "valence"), n_boot=500)
    table = uncertainty.verdicts(res["differences"]).set_index(["model", "versus", "target"])
    assert table.loc[("good", "mean baseline", "energy"), "verdict"] == "better"
    assert table.loc[("same", "mean baseline", "mean"), "verdict"] == "no difference shown"
    assert table.loc[("good", "same", "mean"), "verdict"] == "better"
    lo, hi = res["ci95"]["good"]["energy"]["smse"]
    point = metrics.per_target(test, good, y_train=train, targets=("energy", "valence")).loc["energy", "smse"]
    assert lo < point < hi
    text = uncertainty.verdict_text(res["differences"])
    assert "**good** beats the baseline, with 95 % intervals above 0, on energy, valence" in text
    assert "**same**" in text and "cannot tell it from the baseline on energy, valence" in text


def test_few_groups_give_wide_intervals():
    """The interval reflects the number of artists, not of tracks: 60 tracks of 3 artists
    say less than 60 tracks of 30."""
    train, test, good, _ = _data(2, noise=0.3)
    base = metrics.mean_baseline(train, len(test), targets=("energy", "valence"))
    preds = {"mean baseline": base, "good": good}
    widths = []
    for groups in (np.arange(60) // 20, np.arange(60) // 2):
        res = uncertainty.bootstrap(test, preds, y_train=train, groups=groups, targets=("energy", "valence"), n_boot=400)
        lo, hi = res["summary_ci95"]["good"]["mean_smse"]
        widths.append(hi - lo)
    assert widths[0] > 1.3 * widths[1], widths


def test_a_part_with_too_few_groups_draws_no_verdict():
    train, test, good, _ = _data(3)
    base = metrics.mean_baseline(train, len(test), targets=("energy", "valence"))
    res = uncertainty.bootstrap(test, {"mean baseline": base, "good": good}, y_train=train,
                                groups=np.arange(60) // 20, targets=("energy", "valence"), n_boot=200)
    assert res["n_groups"] == 3
    assert set(uncertainty.verdicts(res["differences"], n_groups=3)["verdict"]) == {"too few groups"}
    assert "only 3 split group(s)" in uncertainty.verdict_text(res["differences"], n_groups=3)


def test_partial_labels_give_intervals_over_each_targets_labelled_rows():
    """Rows without a label for one target still count for the others; each interval is over
    the replicates' labelled rows and still brackets the point score."""
    train, test, good, groups = _data(4)
    test = test.copy()
    test[::2, 1] = np.nan  # valence labelled on half the rows
    base = metrics.mean_baseline(train, len(test), targets=("energy", "valence"))
    res = uncertainty.bootstrap(test, {"mean baseline": base, "good": good}, y_train=train, groups=groups,
                                targets=("energy", "valence"), n_boot=500)
    point = metrics.per_target(test, good, y_train=train, targets=("energy", "valence"))
    for t in ("energy", "valence"):
        lo, hi = res["ci95"]["good"][t]["smse"]
        assert lo < point.loc[t, "smse"] < hi
    assert point.loc["valence", "n"] == len(test) // 2 and point.loc["energy", "n"] == len(test)
    table = uncertainty.verdicts(res["differences"]).set_index(["model", "versus", "target"])
    assert table.loc[("good", "mean baseline", "valence"), "verdict"] == "better"


def test_one_group_gives_no_interval_and_no_verdict():
    """An evaluation part of one artist: no resample differs from the part, so no interval."""
    train, test, good, _ = _data(5)
    base = metrics.mean_baseline(train, len(test), targets=("energy", "valence"))
    res = uncertainty.bootstrap(test, {"mean baseline": base, "good": good}, y_train=train,
                                groups=np.zeros(len(test)), targets=("energy", "valence"))
    assert res["ci95"]["good"]["energy"]["smse"] == [None, None] and res["n_groups"] == 1
    assert set(uncertainty.verdicts(res["differences"], n_groups=res["n_groups"])["verdict"]) == {"too few groups"}
