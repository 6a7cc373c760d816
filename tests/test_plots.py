"""Tests for audioreg.judge.plots: every figure builds, carries its SVG id, and leaks nothing."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from conftest import random_labels  # noqa: E402
from audioreg.judge import metrics, plots  # noqa: E402
from audioreg.targets import TARGETS  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y_true = random_labels(40, seed=0)
    y_pred = y_true + rng.normal(0.0, 0.5, y_true.shape) * y_true.std(axis=0)
    return y_true, y_pred


@pytest.fixture
def table(labels) -> pd.DataFrame:
    y_true, y_pred = labels
    baseline = metrics.mean_baseline(y_true[:10], len(y_true))
    return metrics.compare_models(
        y_true, {"mean baseline": baseline, "rf": y_pred, "gru": 0.5 * (y_true + y_pred)}, y_train=y_true[:10]
    )


@pytest.fixture
def histories() -> dict[str, pd.DataFrame]:
    epochs = np.arange(6)
    val = np.array([1.0, 0.7, 0.5, 0.55, 0.6, 0.65])
    run_a = pd.DataFrame({"epoch": epochs, "train_loss": 1.0 / (epochs + 1), "val_loss": val})
    run_b = run_a.assign(val_loss=val + 0.1, is_best=[True, True, False, True, False, False])
    return {"gru_exp1": run_a, "gru_exp2": run_b}


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.normal(size=(50, 5)).astype(np.float32)


@pytest.fixture
def builders(table, labels, histories, frames) -> dict[str, object]:
    y_true, y_pred = labels
    return {
        "mse_heatmap": lambda: plots.mse_heatmap(table),
        "raw_mse_bars": lambda: plots.raw_mse_bars(table),
        "training_curves": lambda: plots.training_curves(histories),
        "pred_vs_true": lambda: plots.pred_vs_true(y_true, y_pred, model_name="rf"),
        "pred_vs_true_models": lambda: plots.pred_vs_true_models(
            y_true, {"rf": y_pred, "gru": y_true}
        ),
        "residuals_by_target": lambda: plots.residuals_by_target(y_true, y_pred),
        "label_histograms": lambda: plots.label_histograms(pd.DataFrame(y_true, columns=TARGETS)),
        "feature_matrix": lambda: plots.feature_matrix(frames, title="track"),
    }


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()


def test_figure_ids_are_as_documented():
    assert plots.FIGURE_IDS["mse_heatmap"] == "audioreg-mse-heatmap"
    assert plots.FIGURE_IDS["training_curves"] == "audioreg-training-curves"
    assert plots.FIGURE_IDS["pred_vs_true"] == "audioreg-pred-vs-true"


@pytest.mark.parametrize("name", sorted(plots.FIGURE_IDS))
def test_each_plot_returns_a_figure_with_its_gid_in_the_svg(builders, name):
    assert set(builders) == set(plots.FIGURE_IDS)
    fig = builders[name]()
    assert isinstance(fig, Figure)
    assert fig.get_gid() == plots.FIGURE_IDS[name]
    assert f'id="{plots.FIGURE_IDS[name]}"' in _svg(fig)


def test_plots_leave_no_pyplot_figures_behind(builders):
    for build in builders.values():
        build()
    assert plt.get_fignums() == []


def test_heatmap_has_one_annotated_cell_per_model_and_target(table):
    fig = plots.mse_heatmap(table)
    ax = fig.axes[0]
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    continuous = list(metrics.CONTINUOUS_TARGETS)  # key and time signature are classes
    assert meshes[0].get_array().size == 3 * len(continuous)
    assert len(ax.texts) == 3 * len(continuous)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mean baseline", "rf", "gru"]
    assert [t.get_text() for t in ax.get_xticklabels()] == continuous
    expected = f"{table.loc[('rf', 'tempo'), 'smse']:.2f}"
    assert expected in [t.get_text() for t in ax.texts]
    assert "lower is better" in ax.get_title()


def test_heatmap_colours_are_centred_on_the_mean_baseline(table):
    mesh = next(c for c in plots.mse_heatmap(table).axes[0].collections if isinstance(c, QuadMesh))
    assert mesh.norm(1.0) == pytest.approx(0.5)


def test_heatmap_of_one_model_and_of_r2(labels):
    y_true, y_pred = labels
    fig = plots.mse_heatmap(metrics.per_target(y_true, y_pred), value="r2", title="custom")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["model"]
    assert ax.get_title() == "custom"
    with pytest.raises(ValueError, match="value"):
        plots.mse_heatmap(metrics.per_target(y_true, y_pred), value="mse")


def test_raw_mse_bars_are_log_scale_and_name_tempo_share(table):
    fig = plots.raw_mse_bars(table)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert len(ax.patches) == 3 * len(TARGETS)
    share = metrics.summarize(table).loc["rf", "tempo_share_of_raw_mse"]
    assert "tempo" in ax.get_title()
    assert f"{100 * share:.0f} % (rf)" in ax.get_title()


def _stars(fig: Figure):
    return [line for line in fig.axes[0].lines if line.get_marker() == "*"]


def test_training_curves_mark_the_best_epoch(histories):
    fig = plots.training_curves(histories)
    stars = _stars(fig)
    assert len(stars) == 2
    # run a: no is_best column -> lowest val_loss (epoch 2); run b: last is_best row (epoch 3)
    assert stars[0].get_xdata()[0] == 2 and stars[0].get_ydata()[0] == pytest.approx(0.5)
    assert stars[1].get_xdata()[0] == 3 and stars[1].get_ydata()[0] == pytest.approx(0.65)
    dashed = [line for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    assert len(dashed) == 2


def test_training_curves_reject_missing_columns(histories):
    with pytest.raises(ValueError, match="val_loss"):
        plots.training_curves({"broken": histories["gru_exp1"].drop(columns="val_loss")})


def test_pred_vs_true_has_one_panel_per_target_with_identity_and_own_terms(labels):
    y_true, y_pred = labels
    fig = plots.pred_vs_true(y_true, y_pred, model_name="rf")
    assert len(fig.axes) == len(TARGETS)
    scores = metrics.per_target(y_true, y_pred)
    for ax, target in zip(fig.axes, TARGETS):
        assert ax.get_title() == f"{target}\n{scores.loc[target, 'own_terms']}"
        (identity,) = ax.lines
        x, y = identity.get_data()
        assert list(x) == list(y)
    assert "rf" in fig._suptitle.get_text()


def test_pred_vs_true_models_has_one_colour_per_model(labels):
    y_true, y_pred = labels
    fig = plots.pred_vs_true_models(y_true, {"rf": y_pred, "gru": y_true, "x": y_pred})
    assert len(fig.axes) == len(TARGETS)
    assert all(len(ax.collections) == 3 for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["rf", "gru", "x"]


def test_label_histograms_count_every_label(labels):
    y_true, _ = labels
    fig = plots.label_histograms(pd.DataFrame(y_true, columns=TARGETS).assign(track_id="t"))
    assert len(fig.axes) == len(TARGETS)
    for ax in fig.axes:
        assert sum(patch.get_height() for patch in ax.patches) == len(y_true)
    key_axis = fig.axes[TARGETS.index("key")]
    levels = np.unique(y_true[:, TARGETS.index("key")])
    assert len(key_axis.patches) == len(levels)  # one bar per pitch class present
    with pytest.raises(ValueError, match="tempo"):
        plots.label_histograms(pd.DataFrame(y_true, columns=TARGETS).drop(columns="tempo"))


def test_feature_matrix_is_z_scored_per_feature_and_labels_blocks(frames):
    names = [("mfcc", 0), ("mfcc", 1), ("chroma", 0), ("chroma", 1), ("zcr", 0)]
    fig = plots.feature_matrix(frames, names=names, title="t1")
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (5, 50)  # features are rows, frames are columns
    np.testing.assert_allclose(image.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(image.std(axis=1), 1.0, rtol=1e-9)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["mfcc", "chroma", "zcr"]
    constant = plots.feature_matrix(np.ones((4, 2)))
    assert np.all(constant.axes[0].images[0].get_array() == 0)
    with pytest.raises(ValueError, match="names"):
        plots.feature_matrix(frames, names=names[:2])


def test_residuals_by_target_has_one_box_per_target(labels):
    y_true, y_pred = labels
    fig = plots.residuals_by_target(y_true, y_pred)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(TARGETS)


def test_setup_notebook_outside_ipython_sets_svg_text_and_creates_no_shell():
    from IPython.core.interactiveshell import InteractiveShell

    assert not InteractiveShell.initialized()
    with matplotlib.rc_context():
        plots.setup_notebook()
        assert matplotlib.rcParams["svg.fonttype"] == "none"
        fig = plots.mse_heatmap(
            metrics.per_target(np.eye(3), np.eye(3) * 0.5, targets=("a", "b", "c"))
        )
        svg = _svg(fig)
    assert 'id="audioreg-mse-heatmap"' in svg
    assert "<text" in svg  # text kept as text, not paths
    assert not InteractiveShell.initialized()
    reason = "no audio file for track_id 'x': tried 'x.ogg' and 'the artist - a title long enough to be cut'"
    with pd.option_context("display.max_colwidth", 50):
        plots.setup_notebook()
        assert reason in pd.DataFrame({"reason": [reason]})._repr_html_()  # the report shows a reason whole


def test_setup_notebook_inside_ipython_selects_svg_and_inline_html(monkeypatch, table):
    import IPython
    from IPython.core.formatters import DisplayFormatter
    from matplotlib_inline import backend_inline

    calls = []
    shell = SimpleNamespace(display_formatter=DisplayFormatter())
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.setattr(backend_inline, "set_matplotlib_formats", lambda *f: calls.append(f))
    with matplotlib.rc_context():
        plots.setup_notebook()
        data, _ = shell.display_formatter.format(plots.mse_heatmap(table))
    assert calls == [("svg",)]
    html = data["text/html"]
    assert html.startswith("<svg")
    assert 'id="audioreg-mse-heatmap"' in html
    assert "<text" in html


def test_inline_svg_display_keeps_the_gid(table):
    pylabtools = pytest.importorskip("IPython.core.pylabtools")
    svg = pylabtools.print_figure(plots.mse_heatmap(table), "svg")
    assert 'id="audioreg-mse-heatmap"' in svg


def _exported_html(figures, *, with_html: bool) -> str:
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    outputs = []
    for fig in figures:
        data = {"image/svg+xml": _svg(fig)}
        if with_html:  # what setup_notebook's text/html formatter adds inside IPython
            data["text/html"] = plots._inline_svg_html(fig)
        outputs.append(nbformat.v4.new_output("display_data", data=data))
    cell = nbformat.v4.new_code_cell("audioreg.judge.plots.mse_heatmap(scores)", outputs=outputs)
    exporter = nbconvert.HTMLExporter(exclude_input=True)
    html, _ = exporter.from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    return html


@pytest.mark.slow  # a notebook through nbconvert
def test_nbconvert_html_keeps_the_ids_verbatim_with_the_inline_html(table, histories):
    figures = (plots.mse_heatmap(table), plots.training_curves(histories))
    html = _exported_html(figures, with_html=True)
    assert 'id="audioreg-mse-heatmap"' in html
    assert 'id="audioreg-training-curves"' in html
    assert "lower is better" in html  # figure text is searchable text


def test_figure_ids_in_html_decodes_nbconvert_base64_svg(table, histories):
    html = _exported_html((plots.mse_heatmap(table), plots.training_curves(histories)), with_html=False)
    found = plots.figure_ids_in_html(html)
    assert {"audioreg-mse-heatmap", "audioreg-training-curves"} <= found
    assert "audioreg-pred-vs-true" not in found


def test_figure_ids_in_html_reads_inline_and_base64_svg():
    inline = '<div><svg><g id="audioreg-mse-heatmap"></g></svg></div>'
    payload = base64.b64encode(b'<svg><g id="audioreg-training-curves"/></svg>').decode()
    embedded = f'<img src="data:image/svg+xml;base64,{payload}">'
    assert plots.figure_ids_in_html(inline + embedded) == {
        "audioreg-mse-heatmap",
        "audioreg-training-curves",
    }
    assert plots.figure_ids_in_html("<p>no figures</p>") == set()


def test_training_curves_without_histories_says_so():
    fig = plots.training_curves({})
    assert fig.get_gid() == "audioreg-training-curves"
    assert "05_gru did not run" in fig.texts[0].get_text()
    plt.close(fig)


def test_heatmap_shows_continuous_targets_on_a_scale_that_reaches_every_value(table):
    import matplotlib.pyplot as plt

    big = table.copy()
    big.loc[("rf", "speechiness"), "smse"] = 3.7
    fig = plots.mse_heatmap(big)
    ax = fig.axes[0]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert "key" not in columns and "time_signature" not in columns and "speechiness" in columns
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    lo, hi = mesh.norm.vmin, mesh.norm.vmax
    assert hi >= 3.7 and lo <= float(big["smse"].drop(index=["key", "time_signature"], level=1).min())
    assert "training" in fig.axes[1].get_ylabel()
    plt.close(fig)


def test_partial_labels_are_plotted_over_each_targets_labelled_rows(labels):
    """A missing label leaves its point out of that target's panel only; a model that does
    not predict a target leaves its panel without points for it."""
    true, pred = (np.array(a, dtype=np.float64) for a in labels)
    true[::2, TARGETS.index("valence")] = np.nan
    true[:, TARGETS.index("liveness")] = np.nan  # an absent target
    skipped = pred.copy()
    skipped[:, TARGETS.index("energy")] = np.nan
    fig = plots.pred_vs_true(true, pred)
    panel = fig.axes[TARGETS.index("valence")]
    assert len(panel.collections[0].get_offsets()) == np.isfinite(true[:, TARGETS.index("valence")]).sum()
    assert not fig.axes[TARGETS.index("liveness")].collections
    fig = plots.pred_vs_true_models(true, {"a": pred, "b": skipped})
    assert [c.get_label() for c in fig.axes[TARGETS.index("energy")].collections] == ["a"]
    assert isinstance(plots.residuals_by_target(true, pred), Figure)
    plt.close("all")
