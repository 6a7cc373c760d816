"""The run's index page (audioreg.judge.report.write_index), its figures and what it is built
from (audioreg.store.report_inputs), on small synthetic runs: a metrics document made by the
real scoring code (so it has the schema of metrics.json), predictions, a history and a split
table written as the notebooks write them."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from audioreg import runner, store  # noqa: E402
from audioreg.judge import metrics, plots, report, uncertainty  # noqa: E402
from audioreg.targets import TARGETS  # noqa: E402

UNIT = ("danceability", "energy", "valence", "liveness", "speechiness", "instrumentalness", "acousticness")
MODEL_DIRS = {"random forest": "rf", "GRU": "gru", "dsp": "dsp"}


# ------------------------------------------------------------------------------ a synthetic run

def _labels(rng, n: int) -> pd.DataFrame:
    df = pd.DataFrame({t: rng.uniform(0.05, 0.95, n) for t in UNIT})
    df["tempo"] = rng.uniform(60, 180, n)
    df["loudness"] = rng.uniform(-25, -5, n)
    df["time_signature"] = rng.choice([3.0, 4.0, 4.0, 4.0, 5.0], n)
    df["key"] = rng.integers(0, 12, n).astype(float)
    return df[list(TARGETS)]


def synthetic_run(root: Path, *, run_id: str = "r", n_test: int = 40, n_groups: int = 20, genre: bool = True,
                  ceiling: bool = True, seed: int = 0) -> dict:
    """A run's files under ``root``: the split table, each model's predictions (val and test),
    the GRU's history and ``reports/<run_id>/metrics.json`` as 06 writes it. Returns the pieces."""
    rng = np.random.default_rng(seed)
    n_train, n_val = 60, 10
    parts = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    y = pd.concat([_labels(rng, n_train), _labels(rng, n_val), _labels(rng, n_test)], ignore_index=True)
    ids = [f"t{i:03d}" for i in range(len(parts))]
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    formats = ["wav", "flac", "ogg"]
    split = pd.DataFrame({"track_id": ids, "split": parts,
                          "path": [str(audio / f"{t}.{formats[i % 3]}") for i, t in enumerate(ids)],
                          "artists": [f"artist {i % n_groups}" if p == "test" else f"train artist {i % 30}"
                                      for i, p in enumerate(parts)],
                          "track_name": [f"song {i}" for i in range(len(ids))],
                          "sample_rate": [(22050, 44100)[i % 2] for i in range(len(ids))],
                          "channels": [1 + (i // 2) % 2 for i in range(len(ids))],
                          "mode": rng.integers(0, 2, len(ids)).astype(float)})
    if genre:
        split["track_genre"] = [("rock", "folk", "spoken")[i % 3] for i in range(len(ids))]
    split = pd.concat([split, y], axis=1)
    for p in split["path"]:
        Path(p).write_bytes(b"RIFF")
    (root / "data" / "splits").mkdir(parents=True, exist_ok=True)
    split_path = root / "data" / "splits" / "split-abc.csv"
    split.to_csv(split_path, index=False)

    train = split[split["split"] == "train"]
    rows = split[split["split"].isin(["val", "test"])].reset_index(drop=True)
    y_train = train[list(TARGETS)].to_numpy(dtype=np.float64)
    true = rows[list(TARGETS)].to_numpy(dtype=np.float64)
    std = y_train.std(axis=0)
    col = {t: j for j, t in enumerate(TARGETS)}
    rf = true + rng.normal(0, 0.2, true.shape) * std
    rf[:, col["key"]] = np.mod(true[:, col["key"]] + rng.choice([0.0, 0.0, 0.0, 7.0], len(rows)), 12)
    rf[:, col["time_signature"]] = 4.0
    gru = true + rng.normal(0, 0.5, true.shape) * std
    gru[:, col["key"]] = true[:, col["key"]]
    gru[:, col["time_signature"]] = true[:, col["time_signature"]]
    dsp = metrics.mean_baseline(y_train, len(rows))
    dsp[:, col["tempo"]] = true[:, col["tempo"]] * np.resize([1.0, 1.0, 2.0, 0.5, 1.3], len(rows))
    dsp[:, col["key"]] = true[:, col["key"]]
    dsp[:, col["loudness"]] = true[:, col["loudness"]]
    preds = {"random forest": rf, "GRU": gru, "dsp": dsp}
    modes = {"GRU": rows["mode"].to_numpy(), "dsp": np.where(np.arange(len(rows)) % 5 == 0, np.nan, rows["mode"])}
    run_dir = root / "runs" / run_id
    for model, pred in preds.items():
        out = run_dir / MODEL_DIRS[model]
        out.mkdir(parents=True, exist_ok=True)
        df = rows[["track_id", "split"]].copy()
        for j, t in enumerate(TARGETS):
            df[f"true_{t}"] = true[:, j]
            df[f"pred_{t}"] = pred[:, j]
        if model in modes:
            df["pred_mode"] = modes[model]
        df.to_csv(out / "predictions.csv", index=False)
    pd.DataFrame({"epoch": [1, 2, 3, 4], "train_loss": [1.0, 0.7, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.75, 0.8],
                  "lr": 0.001, "seconds": 1.0, "is_best": [True, True, True, False]}).to_csv(
        run_dir / "gru" / "history.csv", index=False)

    test = (rows["split"] == "test").to_numpy()
    doc = _metrics_document(run_id, true[test], {m: p[test] for m, p in preds.items()}, y_train,
                            groups=rows.loc[test, "artists"].to_numpy(), mode_true=rows.loc[test, "mode"].to_numpy(),
                            mode_train=train["mode"].to_numpy(), mode_preds={m: v[test] for m, v in modes.items()})
    doc["noise_ceiling"] = {t: (1.0 if t in ("tempo", "loudness", "key", "time_signature") else 0.8)
                            for t in TARGETS} if ceiling else None
    doc["data"] = {"set": "sample" if ceiling else "own", "metadata_path": str(root / "meta.csv"),
                   "split_key": "abc", "split_path": str(split_path), "n_tracks": len(split),
                   "parts": {"train": n_train, "val": n_val, "test": n_test}, "name": "synthetic, split abc"}
    doc["versions"] = {"python": "3.11.9", "numpy": np.__version__, "torch": None}
    doc["written"] = "2026-01-01T00:00:00+0000"
    report_dir = root / "reports" / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    params = {"root": str(root), "run_id": run_id, "seed": 0, "dropout": 0.3}
    return {"doc": doc, "params": params, "report_dir": report_dir, "split": split, "run_dir": run_dir}


def _metrics_document(run_id, y_test, preds, y_train, *, groups, mode_true, mode_train, mode_preds) -> dict:
    """metrics.json's document, made by the code 06 runs (scores, group bootstrap, verdicts)."""
    everything = {metrics.BASELINE_NAME: metrics.mean_baseline(y_train, len(y_test)), **preds}
    modes = {"mode_true": mode_true, "mode_train": mode_train, "mode_preds": mode_preds}
    scores = metrics.compare_models(y_test, everything, y_train=y_train, **modes)
    unc = uncertainty.bootstrap(y_test, everything, y_train=y_train, groups=groups, n_boot=300, **modes)
    ev = SimpleNamespace(scores=scores, summary=metrics.summarize(scores), uncertainty=unc, val_scores=scores,
                         val_summary=metrics.summarize(scores), val_uncertainty=unc, n_test=len(y_test),
                         n_val=len(y_test), noise_ceiling=None, val_noise_ceiling=None,
                         verdict=uncertainty.verdict_text(unc["differences"], n_groups=unc["n_groups"]))
    doc = report.metrics_document(run_id, ev, params={"run_id": run_id, "seed": 0, "dropout": 0.3},
                                  model_params={"random forest": {"model": {"n_iter": 3}, "best_params": {
                                      "regressor__max_depth": 8}}, "GRU": {"best_epoch": 3, "epochs_trained": 4},
                                      "dsp": {"model": "dsp", "estimates": "tempo: beat tracker"}})
    return json.loads(json.dumps(doc, default=str))


def _stages(report_dir: Path, *, names=runner.NOTEBOOKS, status="done", pages=True) -> list[dict]:
    out = []
    for nb in names:
        page = report_dir / f"{nb}.html"
        if pages:
            page.write_text(f"<html><body><p>{nb}</p></body></html>", encoding="utf-8")
        out.append({"name": nb, "page": page if page.is_file() else None, "status": status, "reason": "",
                    "at": "2026-01-01T00:00:00", "this_run": True, "stale": None, "notes": []})
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One complete run's index (built once: the figures take a few seconds)."""
    root = tmp_path_factory.mktemp("run")
    run = synthetic_run(root)
    inputs = store.report_inputs(run["params"], report_dir=run["report_dir"])
    path = report.write_index(run["report_dir"], "r", run["params"], _stages(run["report_dir"]), run={"outcome": "ok"},
                              inputs=inputs)
    return {**run, "inputs": inputs, "html": path.read_text(encoding="utf-8")}


# ------------------------------------------------------------------------------ reading HTML

class _Tables(HTMLParser):
    """Every <table>: its header texts and its rows' cell texts, rowspans expanded."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._row, self._spans = [], None, None, {}

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
            self._spans = {}
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = {"text": "", "span": int(dict(attrs).get("rowspan", 1)), "th": tag == "th"}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            if all(c["th"] for c in self._row):
                table["head"] = [c["text"].strip() for c in self._row]
            else:
                cells, j = [], 0
                row = list(self._row)
                while row or self._spans.get(j):
                    if self._spans.get(j):
                        text, left = self._spans[j]
                        cells.append(text)
                        self._spans[j] = (text, left - 1) if left > 1 else None
                    else:
                        c = row.pop(0)
                        cells.append(c["text"].strip())
                        if c["span"] > 1:
                            self._spans[j] = (c["text"].strip(), c["span"] - 1)
                    j += 1
                table["rows"].append(cells)
            self._row = None


def tables_of(text: str) -> list[dict]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


def _attributes(text: str, names=("href", "src", "xlink:href")) -> list[str]:
    return re.findall(r'\s(?:%s)="([^"]*)"' % "|".join(re.escape(n) for n in names), text)


def _section(text: str, anchor: str) -> str:
    return text.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


# ------------------------------------------------------------------------------ the page

def test_the_verdict_and_its_figure_come_first(full):
    text = full["html"]
    body = text.split("<body>", 1)[1]
    first = body.index('<section id="verdict">')
    assert all(body.index(f'<section id="{s}">') > first
               for s in ("targets", "summary", "pages", "training", "pred-vs-true", "confusion", "tempo", "breaks",
                         "params", "data"))
    verdict = _section(text, "verdict")
    # the verdict in words (metrics.json's, as HTML), then ONE figure: the learnability figure
    words = verdict.index("beats the baseline")
    assert "<b>random forest</b>" in verdict and words < verdict.index('id="audioreg-learnability"')
    assert verdict.count("<svg") == 1
    before = body[:first]
    assert "<svg" not in before and "<table" not in before


def test_the_figure_shows_each_score_with_its_interval_and_verdict(full):
    doc = full["doc"]
    table = report.learnability_table(doc)
    # one row per model x target, on the metric its verdict was judged on
    assert len(table) == 4 * len(TARGETS)
    rf_energy = table[(table["model"] == "random forest") & (table["target"] == "energy")].iloc[0]
    assert rf_energy["metric"] == "R²" and rf_energy["score"] == pytest.approx(doc["metrics"]["random forest"]["energy"]["r2"])
    assert [rf_energy["lo"], rf_energy["hi"]] == pytest.approx(doc["metrics"]["random forest"]["energy"]["ci95"]["r2"])
    assert table.loc[table["target"] == "key", "metric"].unique().tolist() == ["MIREX"]
    assert table.loc[table["target"] == "time_signature", "metric"].unique().tolist() == ["accuracy"]
    verdicts = {(d["model"], d["target"]): d["verdict"] for d in doc["differences"] if d["versus"] == "mean baseline"}
    assert verdicts[("random forest", "energy")] == "better"
    assert verdicts[("dsp", "energy")] == "no difference shown"  # the dsp row is the baseline there

    fig = plots.learnability(table, ceiling=doc["noise_ceiling"])
    ax = fig.axes[0]
    segments = [tuple(np.round(line.get_xdata(), 9)) for line in ax.lines if len(line.get_xdata()) == 2]
    assert tuple(np.round([rf_energy["lo"], rf_energy["hi"]], 9)) in segments  # its interval is drawn
    markers = [line for line in ax.lines if len(line.get_xdata()) == 1]
    filled = [m for m in markers if m.get_xdata()[0] == pytest.approx(rf_energy["score"])]
    assert filled and filled[0].get_markerfacecolor() != "white"  # learnable: a filled marker
    dsp_energy = table[(table["model"] == "dsp") & (table["target"] == "energy")].iloc[0]
    hollow = [m for m in markers if m.get_xdata()[0] == pytest.approx(dsp_energy["score"]) and m.get_marker() == "o"]
    assert hollow and hollow[0].get_markerfacecolor() == "white"  # not shown: an open marker
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"random forest", "GRU", "dsp"} <= set(labels) and any("noise ceiling" in t for t in labels)
    assert any("interval" in t for t in labels) and "R²" in ax.get_xlabel()
    # in the page too: the interval beside the score, in the table
    lo, hi = doc["metrics"]["random forest"]["energy"]["ci95"]["r2"]
    assert f"R² {doc['metrics']['random forest']['energy']['r2']:.2f} [{lo:.2f}, {hi:.2f}]" in full["html"]


def test_a_tiny_test_part_carries_a_caveat_and_a_large_one_does_not(tmp_path, full):
    from audioreg.judge.uncertainty import MIN_GROUPS

    assert report.small_part_caveat({"n_test": 40, "bootstrap": {"groups": MIN_GROUPS}}) is None
    assert "19 test tracks" in report.small_part_caveat({"n_test": 19, "bootstrap": {"groups": 12}})
    assert "split groups" in report.small_part_caveat({"n_test": 40, "bootstrap": {"groups": MIN_GROUPS - 1}})
    assert 'id="audioreg-small-test-part"' not in full["html"] and "too small" not in full["html"]

    run = synthetic_run(tmp_path, n_test=2, n_groups=2)
    doc = run["doc"]
    assert doc["bootstrap"]["groups"] == 2 and doc["n_test"] == 2
    text = report.write_index(run["report_dir"], "r", run["params"], [], inputs=report.ReportInputs(metrics=doc)
                              ).read_text(encoding="utf-8")
    verdict = _section(text, "verdict")
    assert verdict.index('id="audioreg-small-test-part"') < verdict.index("<svg")
    assert "2 test tracks" in verdict and "2 split groups" in verdict and "draw no conclusion" in verdict
    assert "Caveat: the test part is too small" in verdict  # in the figure's title as well
    # every number of the table is marked, and the table opens with the caveat
    targets = _section(text, "targets")
    assert targets.index('id="audioreg-small-test-part"') < targets.index("<table")
    cells = tables_of(targets)[0]["rows"]
    assert all("†" in row[2] for row in cells)


def test_confusion_matrices_count_a_hand_made_example():
    table = report.confusion([0, 0, 1, 2, 2], [0, 1, 1, 2, np.nan], [0, 1, 2], names=["a", "b", "c"], none="none")
    assert list(table.index) == ["a", "b", "c"] and list(table.columns) == ["a", "b", "c", "none"]
    assert table.to_numpy().tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]]
    # no missing prediction: no "none" column; a true label that is NaN is left out
    assert list(report.confusion([3, 4, np.nan], [3, 3, 4], [3, 4]).columns) == ["3", "4"]
    assert report.confusion([3, 4, np.nan], [3, 3, 4], [3, 4]).to_numpy().sum() == 2
    with pytest.raises(ValueError, match="not one of"):
        report.confusion([0], [5], [0, 1])
    # a regressor's key is read as the nearest pitch class, mod 12: 11.7 is C
    key = report.confusion([0, 0, 11], metrics.key_class([11.7, 0.4, 10.6]), list(range(12)))
    assert key.iloc[0, 0] == 2 and key.iloc[11, 11] == 1
    fig = plots.confusion_matrices({"m": key}, title="Key", true_label="true key", pred_label="predicted key")
    assert fig.get_gid() == "audioreg-confusion-matrices"
    assert "100 % of 3 on the diagonal" in fig.axes[0].get_title()
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "2"]


def test_the_page_holds_confusion_matrices_for_key_mode_and_time_signature(full):
    section = _section(full["html"], "confusion")
    assert section.count('id="audioreg-confusion-matrices"') == 3
    for title in ("Key: true tonic", "Mode: true against predicted", "Time signature: true against predicted"):
        assert title in section
    assert "random forest predicts no mode" in section  # the forest has no mode output: said, not drawn


def test_tempo_errors_are_split_into_octave_errors_and_the_rest():
    true = np.array([100, 100, 100, 100, 100, 100, 90, 100, 100, np.nan])
    pred = np.array([104, 200, 50, 300, 33.4, 96, 150, 104.5, 208.5, 120])
    got = metrics.tempo_error_classes(true, pred).tolist()
    assert got == ["correct", "x2", "x1/2", "x3", "x1/3", "correct", "other", "other", "other", ""]
    table = report.tempo_error_table({"m": np.array(got)}, {"m": true}, {"m": pred})
    row = table.loc["m"]
    assert row["tracks"] == 9 and row["correct"] == 2 and row["other"] == 3
    assert [row[c] for c in ("x2", "x1/2", "x3", "x1/3")] == [1, 1, 1, 1]
    assert row["acc1"] == pytest.approx(2 / 9) and row["acc2"] == pytest.approx(6 / 9)
    # the same Acc1 / Acc2 the metrics module computes
    scored = np.isfinite(true)
    assert row["acc1"] == pytest.approx(metrics.tempo_acc1(true[scored], pred[scored]))
    assert row["acc2"] == pytest.approx(metrics.tempo_acc2(true[scored], pred[scored]))
    assert row["other_mae_bpm"] == pytest.approx((60 + 4.5 + 108.5) / 3)
    fig = plots.tempo_errors(table[["correct", "x2", "x1/2", "x3", "x1/3", "other"]],
                             {"m": np.log2(pred / true)})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["correct", "x2", "x1/2", "x3", "x1/3",
                                                                           "other"]


def test_no_table_has_an_empty_column(full, tmp_path):
    pages = [full["html"]]
    run = synthetic_run(tmp_path, ceiling=False, genre=False)  # a user's own data: no noise ceiling, no genre
    pages.append(report.write_index(run["report_dir"], "r", run["params"], _stages(run["report_dir"]),
                                    inputs=report.ReportInputs(metrics=run["doc"])).read_text(encoding="utf-8"))
    checked = 0
    for text in pages:
        for table in tables_of(text):
            width = max(len(r) for r in table["rows"])
            assert len(table["head"]) == width, table["head"]
            for j, name in enumerate(table["head"]):
                assert any(r[j] for r in table["rows"] if j < len(r)), f"column {name!r} is empty"
            checked += 1
    assert checked >= 8
    assert "noise ceiling" in _section(pages[0], "targets") and "noise ceiling" not in _section(pages[1], "targets")


def test_no_external_reference(full):
    text = full["html"]
    values = _attributes(text)
    assert values
    for value in values:
        assert not re.match(r"^(https?:|ftp:|//)", value.strip(), flags=re.I), value
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text)
    # the figures are inline SVG: no <img> to fetch
    assert text.count("<svg") >= 6 and "<img" not in text


def test_every_notebook_link_points_to_an_existing_page(full, tmp_path):
    text = full["html"]
    pages = [v for v in _attributes(text, ("href",)) if v.endswith(".html")]
    assert sorted(pages) == sorted(f"{nb}.html" for nb in runner.NOTEBOOKS)
    assert all((full["report_dir"] / p).is_file() for p in pages)
    # a stage whose page is gone is listed, unlinked
    stages = _stages(tmp_path, names=("01_ingest", "02_extract"), pages=False)
    (tmp_path / "01_ingest.html").write_text("<p>ok</p>", encoding="utf-8")
    stages[0]["page"] = tmp_path / "01_ingest.html"
    text = report.write_index(tmp_path, "r", {}, stages).read_text(encoding="utf-8")
    assert [v for v in _attributes(text, ("href",)) if v.endswith(".html")] == ["01_ingest.html"]
    assert "02_extract" in text


def test_the_listening_links_open_the_worst_tracks_audio(full):
    section = _section(full["html"], "breaks")
    assert "Worst-predicted test tracks" in section
    links = [v for v in _attributes(section, ("href",))]
    assert links
    test_paths = set(full["split"].loc[full["split"]["split"] == "test", "path"])
    for href in links:
        target = (full["report_dir"] / unquote(href)).resolve()
        assert str(target) in test_paths and target.is_file()


def test_errors_are_broken_down_by_what_the_split_table_holds(full):
    section = _section(full["html"], "breaks")
    assert 'id="audioreg-error-breakdown"' in section
    numbers = next(t for t in tables_of(section) if t["head"][:2] == ["factor", "category"])
    factors = {r[0] for r in numbers["rows"]}
    assert factors == {"genre", "file format", "sample rate", "channels", "tempo range"}
    categories = {(r[0], r[1]): int(r[2]) for r in numbers["rows"]}
    test = full["split"][full["split"]["split"] == "test"]
    assert categories[("file format", "FLAC")] == int(test["path"].str.endswith(".flac").sum())
    assert categories[("sample rate", "44100 Hz")] == int((test["sample_rate"] == 44100).sum())
    assert categories[("channels", "stereo")] == int((test["channels"] == 2).sum())
    assert set(numbers["head"][4:]) == {"mean baseline", "random forest", "GRU", "dsp"}  # baseline beside


def test_the_breakdown_names_a_category_only_when_its_interval_says_so():
    rng = np.random.default_rng(0)
    n = 160
    groups = np.arange(n) % 40  # 20 groups in each category
    bad = np.arange(n) % 2 == 0
    errors = pd.DataFrame({"m": np.where(bad, 2.0, 0.5) + rng.normal(0, 0.05, n),
                           "flat": 1.0 + rng.normal(0, 0.05, n)})
    factors = pd.DataFrame({"f": pd.Categorical(np.where(bad, "hard", "easy"), categories=["easy", "hard"])})
    table = report.error_breakdown(errors, factors, groups)
    hard = table[(table["model"] == "m") & (table["category"] == "hard")].iloc[0]
    assert hard["n"] == 80 and hard["groups"] == 20 and hard["lo"] < hard["mean"] < hard["hi"]
    reading = report.breakdown_reading(table)
    assert reading[0].startswith("f: m is worse on hard") and "no category stands out for flat" in reading[0]
    # one artist: a mean, no interval
    mean, lo, hi = report.group_mean_interval([1.0, 2.0, 3.0], ["a", "a", "a"])
    assert mean == 2.0 and np.isnan(lo) and np.isnan(hi)
    few = report.error_breakdown(errors.iloc[:8], factors.iloc[:8], groups[:8])
    assert "cannot single out" in report.breakdown_reading(few)[0]


def test_the_rest_of_the_page(full):
    text = full["html"]
    training = _section(text, "training")
    assert 'id="audioreg-training-curves"' in training and "best validation epoch, 3 of 4" in training
    assert "no validation error per target" in training  # the history records the loss only
    assert 'id="audioreg-pred-vs-true-models"' in _section(text, "pred-vs-true")
    tempo = _section(text, "tempo")
    assert 'id="audioreg-tempo-errors"' in tempo and "x1/2" in tempo
    experts = _section(text, "experts")
    assert "tempo: beat tracker" in experts and "against the other models" in experts
    params = _section(text, "params")
    assert "dropout" in params and "max_depth=8" in params
    data = _section(text, "data")
    assert "synthetic, split abc" in data and "train 60, val 10, test 40" in data and "numpy" in data


def test_per_target_validation_curves_are_drawn_when_the_history_has_them():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.6], "val_loss": [1.0, 0.9, 0.95],
                            "val_tempo": [30.0, 25.0, 24.0], "val_energy": [0.2, 0.15, 0.16]})
    fig = plots.training_curves({"GRU": history})
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["energy", "tempo"]
    assert len(plots.training_curves({"GRU": history.drop(columns=["val_tempo", "val_energy"])}).axes) == 1


# ------------------------------------------------------------------------------ a run that did not end well

def test_the_index_renders_before_06_without_metrics_and_with_missing_predictions(tmp_path):
    run = synthetic_run(tmp_path)
    (run["report_dir"] / "metrics.json").unlink()  # this run's 06 did not make it
    (run["run_dir"] / "gru" / "predictions.csv").unlink()
    stages = _stages(run["report_dir"], names=("01_ingest", "02_extract", "03_split", "04_rf", "05_gru"))
    stages[4].update(status="failed", reason="ValueError: the loss diverged")
    inputs = store.report_inputs(run["params"], report_dir=run["report_dir"])
    assert inputs.metrics is None and set(inputs.predictions) == {"random forest", "dsp"}
    assert inputs.split is not None and "holds every predicted test track" in inputs.split_note
    text = report.write_index(run["report_dir"], "r", run["params"], stages,
                              run={"outcome": "failed", "stage": "05_gru", "reason": "ValueError: the loss diverged"},
                              inputs=inputs).read_text(encoding="utf-8")
    assert text.index('id="audioreg-run-failed"') < text.index('<section id="verdict">')
    assert "No scores yet" in _section(text, "verdict")
    # 04's predictions are current and shown; dsp's stage (06) has no record: not shown, and said so
    assert "from 04_rf" in _section(text, "pred-vs-true")
    assert "dsp: predictions not shown (no record of 06_error_analysis)" in text
    assert "The saved training history is not shown: 05_gru failed" in _section(text, "training")
    assert 'id="audioreg-error-breakdown"' in _section(text, "breaks")

    # nothing at all: the banner, the pages and the parameters still come
    empty = tmp_path / "empty"
    empty.mkdir()
    text = report.write_index(empty, "e", {"seed": 1}, [], run={"outcome": "running", "started": "now", "pid": 1},
                              inputs=store.report_inputs({"root": str(tmp_path / "nothing"), "run_id": "e"},
                                                         report_dir=empty)).read_text(encoding="utf-8")
    assert 'id="audioreg-run-unfinished"' in text and "No scores yet" in text and "seed" in text
    assert "could not be built" not in text


def test_report_inputs_read_the_run_files_and_say_what_they_could_not(tmp_path):
    run = synthetic_run(tmp_path)
    split = run["split"].drop(columns=["sample_rate", "channels"])  # an older split table
    split.to_csv(run["doc"]["data"]["split_path"], index=False)
    manifest = tmp_path / "data" / "interim" / "ingest-k" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    run["split"][["track_id", "path", "sample_rate", "channels"]].to_csv(manifest, index=False)
    (run["run_dir"] / "dsp" / "predictions.csv").write_text('track_id,split\n"unclosed', encoding="utf-8")
    inputs = store.report_inputs(run["params"], report_dir=run["report_dir"])
    assert inputs.metrics["run_id"] == "r" and set(inputs.predictions) == {"random forest", "GRU"}
    assert list(inputs.histories) == ["GRU"]
    assert {"sample_rate", "channels", "track_genre", "mode", "path"} <= set(inputs.split.columns)
    assert "named by metrics.json" in inputs.split_note and str(manifest) in inputs.split_note
    assert inputs.split["sample_rate"].tolist() == run["split"]["sample_rate"].tolist()
    assert any("dsp" in n and "predictions.csv" in n for n in inputs.notes)
    # a column neither holds is said, not invented
    manifest.unlink()
    again = store.report_inputs(run["params"], report_dir=run["report_dir"])
    assert "sample_rate" not in again.split.columns
    assert "Neither the split table nor an ingest manifest holds sample_rate, channels" in again.split_note


# ------------------------------------------------------------------------------ the notebook pages

def test_notebook_pages_get_a_title_and_a_link_back(tmp_path):
    import nbformat

    progress = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "m1", "version_major": 2, "version_minor": 0},
        "text/plain": "HBox(children=(FloatProgress(value=0.0),))"})
    code = nbformat.v4.new_code_cell("fit()", outputs=[progress, nbformat.v4.new_output("stream", text="fitted\n")])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Forest\nscores"), code])
    nb.metadata["papermill"] = {"parameters": {"run_id": "demo"}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                            "version_minor": 0}}
    src = tmp_path / "04_rf.ipynb"
    nbformat.write(nb, str(src))
    page = report.render_html(src, tmp_path / "04_rf.html")
    text = page.read_text(encoding="utf-8")
    assert re.search(r"<title>04_rf · run demo</title>", text)
    body = text.split("<body", 1)[1].split(">", 1)[1]
    assert body.lstrip().startswith(f'<nav id="{report.BACK_LINK_ID}"')
    assert 'href="index.html"' in body.split("</nav>", 1)[0] and "Forest" in body and "fitted" in body
    # self-contained: no script from a CDN, no widget manager, no progress-bar widget
    assert not [v for v in _attributes(text) if re.match(r"^(https?:|//)", v)]
    assert not re.search(r"<script[^>]*\ssrc=", text) and "widget-view" not in text and "FloatProgress" not in text
    # the run id given wins over the notebook's; a page without a <title> gets one
    text = report.render_html(src, tmp_path / "05_gru.html", run_id="other").read_text(encoding="utf-8")
    assert "<title>05_gru · run other</title>" in text
    bare = report.page_chrome("<html><head></head><body><p>x</p></body></html>", name="06_error_analysis", run_id="r")
    assert "<title>06_error_analysis · run r</title>" in bare and bare.index("index.html") < bare.index("<p>x</p>")


def test_readable_tables_drop_empty_columns_and_blank_empty_cells():
    """The notebook pages' tables: a column with no value goes, a missing value is blank, numbers
    are at 3 significant digits, whole numbers and thousands whole."""
    df = pd.DataFrame({"r2": [0.391494, np.nan], "acc1": [np.nan, np.nan], "mse": [938.348, 0.0268537],
                       "n": [34.0, 34.0], "note": ["x", None]}, index=["GRU", "dsp"])
    styled = report.readable(df)
    assert list(styled.data.columns) == ["r2", "mse", "n", "note"]
    html = styled.to_html()
    assert "nan" not in html.lower() and "None" not in html
    for text in (">0.391<", ">938<", ">0.0269<", ">34<", "></td>"):
        assert text in html, text
    assert ">1,421<" in report.readable(pd.DataFrame({"variance": [1421.4559]})).to_html()
