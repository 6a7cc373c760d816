"""audioreg.study on a tiny synthetic problem: fake song statistics where one feature group
carries the signal of one target and nothing carries another's, so the learning curve must
rise for the first and stay flat for the second, and the ablation must find the group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audioreg import study
from audioreg.judge import metrics
from audioreg.stages import song_feature_names
from audioreg.targets import TARGETS

COL = {t: j for j, t in enumerate(TARGETS)}


def _labels(rng, n):
    """Valid labels for all 11 targets, independent of any feature."""
    y = np.column_stack([rng.uniform(0, 1, n) for _ in TARGETS])
    y[:, COL["tempo"]] = rng.uniform(60, 180, n)
    y[:, COL["loudness"]] = rng.uniform(-30, -5, n)
    y[:, COL["time_signature"]] = rng.choice([3, 4], n)
    y[:, COL["key"]] = rng.integers(0, 12, n)
    return y


@pytest.fixture(scope="module")
def problem() -> study.StudyData:
    """Energy is a function of the MFCC means (plus a little noise); valence is pure noise;
    no other group carries anything. Artists of 3 tracks each."""
    rng = np.random.default_rng(0)
    names = song_feature_names(experts=False)
    groups = study.feature_groups(names)
    n_train, n_test = 240, 90

    def part(n, offset):
        x = rng.normal(size=(n, len(names)))
        y = _labels(rng, n)
        mfcc = x[:, groups["mfcc"][:3]]
        y[:, COL["energy"]] = 1 / (1 + np.exp(-(mfcc[:, 0] + mfcc[:, 1] * mfcc[:, 2]))) + rng.normal(0, 0.03, n)
        return x, y, np.array([f"artist{offset + i // 3}" for i in range(n)])

    x_tr, y_tr, g_tr = part(n_train, 0)
    x_te, y_te, g_te = part(n_test, 1000)
    return study.StudyData(x_train=x_tr, y_train=y_tr, groups_train=g_tr, x_test=x_te, y_test=y_te, groups_test=g_te,
                           names=names, test_ids=np.array([f"t{i}" for i in range(n_test)]))


@pytest.fixture(scope="module")
def forest():
    return study.small_forest(n_estimators=40, max_features=0.5)


def test_feature_groups_cover_every_column_once():
    names = song_feature_names(experts=True)
    groups = study.feature_groups(names)
    assert list(groups) == ["mfcc", "chroma", "contrast", "tonnetz", "zcr", "lufs", "experts"]
    cols = sorted(j for c in groups.values() for j in c)
    assert cols == list(range(len(names)))
    assert all(names[j][0] == "mfcc" for j in groups["mfcc"]) and len(groups["mfcc"]) == 40
    assert "experts" not in study.feature_groups(song_feature_names(experts=False))
    with pytest.raises(ValueError, match="no feature group"):
        study.feature_groups([("mystery", "mean", 0)])


def test_subsets_are_nested_and_never_split_a_group():
    groups = np.repeat([f"a{i}" for i in range(20)], np.arange(1, 21) % 4 + 1)
    subsets = study.nested_group_subsets(groups, fractions=[1.0, 0.1, 0.5], repeats=3, random_state=7)
    assert [(s.fraction, s.repeat) for s in subsets] == [(f, r) for r in range(3) for f in (0.1, 0.5, 1.0)]
    for r in range(3):
        small, half, full = (set(s.rows) for s in subsets if s.repeat == r)
        assert small < half < full == set(range(len(groups)))
        for rows in (small, half):
            chosen = set(groups[sorted(rows)])
            assert rows == {i for i, g in enumerate(groups) if g in chosen}  # whole groups only
        assert len(half) >= 0.5 * len(groups) and len(small) >= 0.1 * len(groups)
    assert len({tuple(s.rows) for s in subsets if s.fraction == 0.5}) > 1  # the repeats draw other groups
    again = study.nested_group_subsets(groups, fractions=[0.1, 0.5, 1.0], repeats=3, random_state=7)
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(subsets, again))
    with pytest.raises(ValueError):
        study.nested_group_subsets(groups, fractions=[0.0, 1.0], repeats=1, random_state=0)


def test_learning_curve_rises_for_a_learnable_target_and_is_flat_for_noise(problem, forest):
    curve = study.learning_curve(problem, model=forest, fractions=[0.1, 1.0], repeats=2, random_state=0, n_boot=300)
    pts = curve.points.set_index(["model", "target", "fraction"]).sort_index()
    energy = pts.loc[("random forest", "energy")]
    assert energy.loc[1.0, "score"] > energy.loc[0.1, "score"] + 0.1
    assert energy.loc[1.0, "lo"] > 0.3  # learnable, with an interval
    assert pts.loc[("random forest", "valence", 1.0), "score"] < 0.15  # noise: nothing to learn
    assert energy.loc[0.1, "n_tracks"] < 0.2 * len(problem.x_train) and energy.loc[1.0, "n_tracks"] == len(problem.x_train)
    # the denominator is the full training part's: the baseline at fraction 1 scores R^2 = 1 - smse of the train mean
    base = pts.loc[(metrics.BASELINE_NAME, "valence", 1.0), "score"]
    expected = metrics.per_target(problem.y_test, metrics.mean_baseline(problem.y_train, len(problem.y_test)),
                                  y_train=problem.y_train).loc["valence", "r2"]
    assert base == pytest.approx(expected)
    subsets = study.nested_group_subsets(problem.groups_train, fractions=[0.1, 1.0], repeats=2, random_state=0)
    small = [metrics.per_target(problem.y_test, metrics.mean_baseline(problem.y_train[s.rows], len(problem.y_test)),
                                y_train=problem.y_train).loc["danceability", "r2"] for s in subsets if s.fraction == 0.1]
    assert pts.loc[(metrics.BASELINE_NAME, "danceability", 0.1), "score"] == pytest.approx(np.mean(small))
    trend = curve.trend.set_index("target")
    assert trend.loc["energy", "verdict"] in ("still rising", "rises (last step not shown)")
    assert trend.loc["energy", "gain_lo"] > 0 and trend.loc["energy", "beats_baseline"] == "better"
    assert trend.loc["valence", "verdict"] == "flat (no gain shown)"
    assert trend.loc["valence", "beats_baseline"] != "better"
    text = study.trend_text(curve.trend, n_test_groups=curve.n_test_groups)
    assert "energy" in text.split("flat")[0] and "valence" in text.split("flat")[1]


def test_ablation_finds_the_group_that_carries_the_signal(problem, forest):
    abl = study.ablation(problem, model=forest, random_state=0, n_boot=300)
    d = abl.differences.set_index(["mode", "group", "target"])
    assert d.loc[("without", "mfcc", "energy"), "verdict"] == "needed"
    assert d.loc[("alone", "mfcc", "energy"), "verdict"] == "learns alone"
    for g in ("chroma", "contrast", "tonnetz", "zcr", "lufs"):
        assert d.loc[("without", g, "energy"), "verdict"] != "needed", g
        assert d.loc[("alone", g, "energy"), "verdict"] != "learns alone", g
    assert (d.xs("valence", level="target")["verdict"] != "needed").all()
    matrix = study.verdict_matrix(abl.differences, mode="without")
    assert matrix.loc["energy", "mfcc"].startswith("needed (+")
    assert list(matrix.index) == list(TARGETS)
    assert "**energy**: needs mfcc" in study.ablation_text(abl.differences, n_test_groups=abl.n_test_groups)
    scores = abl.scores.set_index(["variant", "target"])
    assert scores.loc[("all features", "energy"), "score"] > scores.loc[("without mfcc", "energy"), "score"] + 0.2
    assert set(abl.predictions) >= {"all features", "without mfcc", "mfcc alone"}


def test_a_part_too_small_is_said_not_crashed(problem, forest):
    tiny = study.StudyData(x_train=problem.x_train[:9], y_train=problem.y_train[:9], groups_train=problem.groups_train[:9],
                           x_test=problem.x_test[:5], y_test=problem.y_test[:5], groups_test=problem.groups_test[:5],
                           names=problem.names)
    assert "too small to judge" in tiny.caveat() and problem.caveat() is None
    curve = study.learning_curve(tiny, model=forest, fractions=[0.1, 1.0], repeats=2, random_state=0, n_boot=50)
    small = curve.points[(curve.points["model"] == "random forest") & (curve.points["fraction"] == 0.1)]
    assert small["score"].isna().all() and small["note"].str.startswith("not trained").all()  # one artist: no folds
    assert curve.trend["verdict"].eq("too few fitted sizes").all()
    assert "too few" in study.trend_text(curve.trend, n_test_groups=curve.n_test_groups)
    abl = study.ablation(tiny, model=forest, random_state=0, n_boot=50)
    assert abl.differences["verdict"].isin(["too few groups", "not scored"]).all()
    assert "too few" in study.ablation_text(abl.differences, n_test_groups=abl.n_test_groups)


def test_study_ceiling_is_the_score_of_the_clean_labels(problem):
    clean = problem.y_test.copy()
    noisy = study.StudyData(**{**problem.__dict__, "y_test": problem.y_test + np.where(
        np.isin(np.arange(len(TARGETS)), [COL["danceability"]]), np.random.default_rng(1).normal(0, 0.2, problem.y_test.shape), 0)})
    table = study.study_ceiling(noisy, {"perfect": clean}, clean=clean, random_state=0, n_boot=200).set_index(["target", "model"])
    assert table.loc[("energy", "perfect"), "ceiling"] == pytest.approx(1.0)
    assert table.loc[("danceability", "perfect"), "ceiling"] < 0.9  # the noise costs the ceiling
    assert table.loc[("danceability", "perfect"), "gap"] == pytest.approx(0.0)
    assert table.loc[("danceability", metrics.BASELINE_NAME), "ceiling_verdict"] == "below the ceiling"
    assert table.loc[("key", "perfect"), "metric"] == "tonic accuracy"
    assert study.ceiling_dict(table.reset_index())["energy"] == pytest.approx(1.0)


def test_ceiling_from_run_reads_metrics_json():
    doc = {"noise_ceiling": {t: 0.9 for t in TARGETS}, "bootstrap": {"groups": 12},
           "metrics": {m: {t: {"r2": 0.5, "accuracy": 0.6, "ci95": {"r2": [0.4, 0.6], "accuracy": [0.5, 0.95]}}
                           for t in TARGETS} for m in (metrics.BASELINE_NAME, "random forest")},
           "differences": [{"model": "random forest", "versus": metrics.BASELINE_NAME, "target": "energy",
                            "metric": "smse", "ci95": [0.1, 0.3]}]}
    table = study.ceiling_from_run(json.loads(json.dumps(doc))).set_index(["target", "model"])
    assert table.loc[("energy", "random forest"), "gap"] == pytest.approx(0.4)
    assert table.loc[("energy", "random forest"), "ceiling_verdict"] == "below the ceiling"
    assert table.loc[("key", "random forest"), "ceiling_verdict"] == "ceiling not excluded"  # 0.95 > 0.9
    assert table.loc[("key", "random forest"), "score"] == 0.6  # tonic accuracy, the ceiling's terms
    assert table.loc[("energy", "random forest"), "verdict"] == "better"
    assert table.loc[("valence", "random forest"), "verdict"] == "not scored"


def test_figures_draw_intervals(problem, forest):
    from audioreg.judge import plots

    curve = study.learning_curve(problem, model=forest, fractions=[0.5, 1.0], repeats=1, random_state=0, n_boot=100)
    fig = plots.learning_curves(curve.points)
    assert fig.get_gid() == "audioreg-learning-curves"
    assert any(ax.collections for ax in fig.axes)  # the interval bands
    abl = study.ablation(problem, model=forest, modes=["alone"], groups={"mfcc": study.feature_groups(problem.names)["mfcc"]},
                         random_state=0, n_boot=100)
    fig = plots.ablation_differences(abl.differences, mode="alone")
    assert fig.get_gid() == "audioreg-ablation-differences" and fig.axes[0].get_xlabel()
    with pytest.raises(ValueError):
        plots.ablation_differences(abl.differences, mode="without")


def test_parse_list_and_run_settings_write_nothing(tmp_path):
    assert study.parse_list("0.1, 0.5,1") == [0.1, 0.5, 1.0]
    assert study.parse_list("without,alone", kind=str) == ["without", "alone"]
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text("seed: 3\nrf_n_iter: 2\n")
    params = study.run_settings({"root": str(tmp_path), "run_id": "r1", "seed": 9, "In": None})
    assert params["seed"] == 3 and params["rf_n_iter"] == 2  # the run's data settings, not the study's seed
    assert (run / "params.yaml").read_text() == "seed: 3\nrf_n_iter: 2\n"
    assert study.read_run_metrics(params) is None
    (run / "metrics.json").write_text(json.dumps({"n_test": 5}))
    assert study.read_run_metrics(params) == {"n_test": 5}


def test_the_ceiling_views_say_why_there_is_nothing_or_show_table_and_figure(tmp_path, problem):
    """The notebook's ceiling cells: a run without a noise ceiling, or data without noise-free
    labels, gets one line saying so; a run with one gets the table and the figure."""
    from IPython.display import Markdown
    from matplotlib.figure import Figure

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text("seed: 3\n")
    params = study.run_settings({"root": str(tmp_path), "run_id": "r1", "In": None})
    [line] = study.run_ceiling_view(params, run_id="r1")
    assert isinstance(line, Markdown) and "no metrics.json with a noise ceiling" in line.data
    doc = {"n_test": 40, "noise_ceiling": {t: 0.9 for t in TARGETS}, "bootstrap": {"groups": 12},
           "metrics": {m: {t: {"r2": 0.5, "accuracy": 0.6, "ci95": {"r2": [0.4, 0.6], "accuracy": [0.5, 0.95]}}
                           for t in TARGETS} for m in (metrics.BASELINE_NAME, "random forest")},
           "differences": []}
    (run / "metrics.json").write_text(json.dumps(doc))
    line, table, fig = study.run_ceiling_view(params, run_id="r1")
    assert "40 test tracks, 12 artist groups" in line.data and isinstance(fig, Figure)
    assert set(table["model"]) == {metrics.BASELINE_NAME, "random forest"}
    [line] = study.study_ceiling_view(params, problem, {}, random_state=0, n_boot=10)
    assert "no ceiling" in line.data
