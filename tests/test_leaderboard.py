"""Tests for audioreg.judge.leaderboard and ``audioreg report``: the cross-run page, from metrics.json only.

The documents are written by the fixtures below, with the schema of
``audioreg.judge.report.metrics_document`` (and ``data``/``versions``/``written`` as
``audioreg.store.write_run_metrics`` adds them); nothing here needs ``runs/`` to exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from audioreg.cli import main  # noqa: E402
from audioreg.judge import leaderboard as lb  # noqa: E402
from audioreg.judge.metrics import BASELINE_NAME, CLASS_TARGETS  # noqa: E402
from audioreg.targets import TARGETS  # noqa: E402

MODELS = (BASELINE_NAME, "random forest", "GRU", "dsp")


def _entry(target: str, q: float, *, n: int, mirex: bool = True, ci: bool = True) -> dict:
    """One metrics[model][target] block whose scores all rise with the quality ``q`` (0..1)."""
    e = {k: None for k in ("mse", "smse", "r2", "mae", "accuracy", "acc1", "acc2", "mirex", "key_mode_accuracy")}
    e.update(smse=1.0 - q, r2=q, mse=(1.0 - q) * (1400.0 if target == "tempo" else 0.05), variance=1.0, n=float(n))
    e["mae"] = 30.0 * (1.0 - q) if target == "tempo" else 5.0 * (1.0 - q) if target == "loudness" else 0.2 * (1.0 - q)
    if target == "tempo":
        e.update(acc1=q, acc2=min(1.0, q + 0.05))
    if target in CLASS_TARGETS:
        e["accuracy"] = q
    if target == "key":
        e.update(mirex=min(1.0, q + 0.02) if mirex else None, key_mode_accuracy=q)
    e["own_terms"] = f"score {q:.2f}"
    e["ci95"] = {k: ([v - 0.1, v + 0.1] if ci else None) for k, v in e.items()
                 if k not in ("variance", "n", "own_terms") and v is not None}
    return e


def _doc(run_id: str, quality: dict[str, float], *, data_key: str | None = "splitA", data_set: str = "sample",
         n_test: int = 40, written: str = "2025-01-01T10:00:00+0000", params: dict | None = None,
         per_target: dict[str, dict[str, float]] | None = None, mirex: bool = True) -> dict:
    """A metrics.json document: each model's quality, optionally overridden per (target, model)."""
    per_target = per_target or {}
    metrics = {m: {t: _entry(t, per_target.get(t, {}).get(m, q), n=n_test, mirex=mirex) for t in TARGETS}
               for m, q in quality.items()}
    doc = {"run_id": run_id, "denominator": "smse and r2 divide by the training part's variance",
           "n_test": n_test, "metrics": metrics,
           "summary": [{"model": m, "mean_smse": 1.0 - q, "mean_raw_mse": 100.0, "tempo_share_of_raw_mse": 0.95,
                        "n_targets": 9, "mean_smse_ci95": [0.9 - q, 1.1 - q]} for m, q in quality.items()],
           "differences": [{"index": i, "model": m, "versus": BASELINE_NAME, "target": t, "metric": "smse",
                            "difference": 0.1, "ci95": [0.01, 0.2], "better_is": "lower", "verdict": "better"}
                           for i, (m, t) in enumerate((m, t) for m in quality if m != BASELINE_NAME for t in TARGETS)],
           "verdict": "- text", "bootstrap": {"groups": 12, "replicates": 2000, "level": 0.95, "resamples": "artists"},
           "caveat": "tempo dominates raw MSE", "noise_ceiling": {t: 0.9 for t in TARGETS}, "noise_ceiling_note": "",
           "val": {"n": n_test, "metrics": {}, "summary": [], "differences": []},
           "params": {"root": "/x", "run_id": run_id, "seed": 0, "dropout": 0.3, **(params or {})},
           "model_params": {}, "conformal": {}}
    if data_key is not None:
        doc.update(data={"set": data_set, "metadata_path": f"/data/{data_set}/metadata.csv", "key": data_key,
                         "split_key": f"s-{data_key}",
                         "split_path": f"/data/splits/split-s-{data_key}.csv", "n_tracks": n_test * 6,
                         "parts": {"train": n_test * 4, "val": n_test, "test": n_test},
                         "name": f"{data_set} set ({data_set}), split {data_key}"},
                   versions={"numpy": "2.0", "torch": "2.3"}, written=written)
    return doc


def _write(runs: Path, doc: dict, folder: str | None = None) -> Path:
    path = runs / (folder or doc["run_id"]) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _sections(page: str) -> dict[str, str]:
    """Data-set section id -> its HTML."""
    return dict(re.findall(r'<section class="dataset" id="([^"]+)">(.*?)</section>', page, flags=re.DOTALL))


def _section_named(page: str, name: str) -> str:
    hits = [body for body in _sections(page).values() if f"<h2>{name}</h2>" in body]
    assert len(hits) == 1, f"{len(hits)} sections named {name!r}"
    return hits[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """runs/ with two sample-set runs on split A, one own-data run on split B, an own-data run on
    split A's key (a different data set all the same), an old run without ``data`` and three bad
    files; reports/ with a page for a1 only. The cross-run page is written once."""
    root = tmp_path_factory.mktemp("site")
    runs, reports = root / "runs", root / "reports"
    _write(runs, _doc("a1", {BASELINE_NAME: 0.0, "random forest": 0.5, "GRU": 0.6, "dsp": 0.1},
                      written="2025-01-01T10:00:00+0000", params={"dropout": 0.3},
                      per_target={"tempo": {"dsp": 0.9, "GRU": 0.2}}))
    _write(runs, _doc("a2", {BASELINE_NAME: 0.0, "random forest": 0.45, "GRU": 0.8},
                      written="2025-01-02T10:00:00+0000", params={"dropout": 0.5}))
    _write(runs, _doc("b1", {BASELINE_NAME: 0.0, "random forest": 0.3}, data_key="splitB", data_set="own",
                      n_test=12))
    _write(runs, _doc("c1", {BASELINE_NAME: 0.0, "GRU": 0.99}, data_key="splitA", data_set="own"))
    _write(runs, _doc("old", {BASELINE_NAME: 0.0, "GRU": 0.95}, data_key=None))
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text('{"run_id": "broken", "metrics": ', encoding="utf-8")
    (runs / "alist").mkdir()
    (runs / "alist" / "metrics.json").write_text("[1, 2]", encoding="utf-8")
    (runs / "nometrics").mkdir()
    (runs / "nometrics" / "metrics.json").write_text('{"run_id": "nometrics"}', encoding="utf-8")
    (reports / "a1").mkdir(parents=True)
    (reports / "a1" / "index.html").write_text("<html></html>", encoding="utf-8")
    (reports / "b1").mkdir()  # a folder without an index.html: no link
    out = lb.write_cross_run_index(runs, reports / "index.html")
    docs, problems = lb.load_runs(runs)
    return {"runs": runs, "reports": reports, "out": out, "page": out.read_text(encoding="utf-8"),
            "docs": docs, "problems": problems}


def _data_set(site: dict, key: str) -> lb.DataSet:
    return next(ds for ds in lb.data_sets(site["docs"]) if ds.key == key)


# ------------------------------------------------------------------------------ grouping


def test_two_data_sets_are_never_mixed(site):
    sets = {ds.key: [d["run_id"] for d in ds.runs] for ds in lb.data_sets(site["docs"])}
    assert sets == {"sample:splitA": ["a1", "a2"], "own:splitB": ["b1"], "own:splitA": ["c1"],
                    "unrecorded:old": ["old"]}
    for ds in lb.data_sets(site["docs"]):
        for target in TARGETS:
            assert set(lb.leaderboard(ds.runs, target)["run_id"]) == {d["run_id"] for d in ds.runs}
    page = site["page"]
    sample = _section_named(page, "sample set (sample), split splitA")
    own_a = _section_named(page, "own set (own), split splitA")
    assert "a1" in sample and "a2" in sample and ">c1<" not in sample and ">b1<" not in sample
    assert ">c1<" in own_a and ">a1<" not in own_a and ">a2<" not in own_a


def test_old_document_without_data_is_unranked(site):
    old = [ds for ds in lb.data_sets(site["docs"]) if not ds.ranked]
    assert [(ds.key, [d["run_id"] for d in ds.runs]) for ds in old] == [("unrecorded:old", ["old"])]
    assert all(ds.ranked for ds in lb.data_sets(site["docs"]) if ds.key != "unrecorded:old")
    section = _section_named(site["page"], f"old: {lb.UNRECORDED}")
    assert "ranked with no other run" in section
    others = [body for body in _sections(site["page"]).values() if body != section]
    assert others and not any(">old<" in body for body in others)


def test_two_old_documents_are_each_their_own_data_set():
    docs = [_doc("x", {BASELINE_NAME: 0.0, "GRU": 0.5}, data_key=None),
            _doc("y", {BASELINE_NAME: 0.0, "GRU": 0.7}, data_key=None)]
    sets = lb.data_sets(docs)
    assert [[d["run_id"] for d in ds.runs] for ds in sets] == [["x"], ["y"]]
    assert not any(ds.ranked for ds in sets)


# ------------------------------------------------------------------------------ rankings


def test_sort_order_per_target(site):
    a = _data_set(site, "sample:splitA")

    def rows(target: str) -> list[tuple[str, str]]:
        table = lb.leaderboard(a.runs, target)
        return list(zip(table["run_id"], table["model"]))

    # danceability: R², higher first; each run's baseline and a1's dsp are rows too
    assert rows("danceability") == [("a2", "GRU"), ("a1", "GRU"), ("a1", "random forest"), ("a2", "random forest"),
                                    ("a1", "dsp"), ("a1", BASELINE_NAME), ("a2", BASELINE_NAME)]
    # tempo: Acc1 first (a1's dsp is best at tempo, its GRU worst of the models)
    tempo = lb.leaderboard(a.runs, "tempo")
    assert [s.column for s in tempo.attrs["scores"]] == ["acc1", "acc2", "mae"]
    assert rows("tempo")[:2] == [("a1", "dsp"), ("a2", "GRU")]
    assert tempo["acc1"].is_monotonic_decreasing
    assert rows("tempo")[-3:] == [("a1", "GRU"), ("a1", BASELINE_NAME), ("a2", BASELINE_NAME)]
    # loudness: R², then MAE in dB; key: MIREX when every run has it; time_signature: accuracy
    assert [s.column for s in lb.leaderboard(a.runs, "loudness").attrs["scores"]] == ["r2", "mae"]
    key = lb.leaderboard(a.runs, "key")
    assert [s.column for s in key.attrs["scores"]] == ["mirex", "accuracy"] and key["mirex"].is_monotonic_decreasing
    assert [s.column for s in lb.leaderboard(a.runs, "time_signature").attrs["scores"]] == ["accuracy"]
    # mean sMSE: lower first
    assert list(lb.mean_smse_table(a.runs)["mean_smse"]) == sorted(lb.mean_smse_table(a.runs)["mean_smse"])


def test_key_falls_back_to_tonic_accuracy_without_mirex():
    docs = [_doc("m", {BASELINE_NAME: 0.0, "GRU": 0.5}), _doc("n", {BASELINE_NAME: 0.0, "GRU": 0.7}, mirex=False)]
    key = lb.leaderboard(docs, "key")
    assert [s.column for s in key.attrs["scores"]] == ["accuracy"]
    assert list(key["run_id"][:2]) == ["n", "m"] and list(key["accuracy"][:2]) == [0.7, 0.5]


def test_the_best_and_rows_the_intervals_cannot_tell_from_it():
    docs = [_doc("r", {BASELINE_NAME: 0.0, "random forest": 0.55, "GRU": 0.6})]  # intervals ±0.1
    table = lb.leaderboard(docs, "energy")
    assert dict(zip(table["model"], table["from_best"])) == {
        "GRU": "best", "random forest": "cannot tell from the best", BASELINE_NAME: "worse than the best"}
    assert dict(zip(table["model"], table["vs_baseline"]))[BASELINE_NAME] == "the baseline"
    assert dict(zip(table["model"], table["vs_baseline"]))["GRU"] == "better (smse)"


def test_intervals_shown_at_three_significant_digits(tmp_path):
    doc = _doc("p", {BASELINE_NAME: 0.0, "GRU": 0.5})
    doc["metrics"]["GRU"]["energy"].update(r2=0.123456, ci95={"r2": [0.0123456, 0.234567], "smse": [0.7, 0.99]})
    doc["metrics"]["GRU"]["tempo"].update(mae=27.41724, ci95={"mae": [20.2597, 35.39963]})
    _write(tmp_path / "runs", doc)
    page = lb.write_cross_run_index(tmp_path / "runs", tmp_path / "reports" / "index.html").read_text()
    assert '0.123 <span class="ci">[0.0123, 0.235]</span>' in page
    assert '27.4 <span class="ci">[20.3, 35.4]</span>' in page
    assert page.count("[no interval recorded]") == 2  # the GRU's tempo Acc1 and Acc2
    # every score cell carries its interval: 2 models x each target's scores, and the mean-sMSE table
    expected = 2 * (sum(len(lb.target_scores(t, [doc])) for t in TARGETS) + 1)
    assert page.count('<span class="ci">') == expected


def test_baseline_rows_present_and_marked(site):
    for ds in lb.data_sets(site["docs"]):
        for target in TARGETS:
            table = lb.leaderboard(ds.runs, target)
            baselines = table[table["baseline"]]
            assert sorted(baselines["run_id"]) == sorted(d["run_id"] for d in ds.runs)
            assert (baselines["model"] == BASELINE_NAME).all()
    page = site["page"]
    marked = re.findall(r'<tr class="baseline">.*?</tr>', page, flags=re.DOTALL)
    n_runs = len(site["docs"])
    assert len(marked) == n_runs * (len(TARGETS) + 1)  # each target's table and the mean-sMSE table
    assert all(f"{BASELINE_NAME} <span class=\"tag\">baseline</span>" in row for row in marked)


# ------------------------------------------------------------------------------ the page


def test_links_only_to_existing_run_pages(site):
    hrefs = re.findall(r'<a href="([^"]*)"', site["page"])
    assert hrefs and set(hrefs) == {"a1/index.html"}
    assert all((site["reports"] / h).is_file() for h in hrefs)
    assert 'title="no b1/index.html beside this page">b1<' in site["page"]


def test_the_page_has_no_external_reference(site):
    page = site["page"]
    refs = re.findall(r'\b(?:src|href|xlink:href|action)\s*=\s*"([^"]*)"', page, flags=re.IGNORECASE)
    assert refs  # the run link and the SVG's internal references are there to check
    # page links are relative, the SVG's references are fragments or its colour bar's inline PNG
    inline = [r for r in refs if r.startswith("data:image/png;base64,")]
    assert not [r for r in refs if r not in inline and re.match(r"(?i)(https?:|//|/|[a-z][a-z0-9+.-]*:)", r)]
    assert not re.search(r"(?i)https?:|<link\b|@import|<iframe|<img\b|\bsrc\s*=", page)
    assert not re.findall(r"url\((?!#)", page)
    assert "<svg" in page and lb.FIGURE_ID in page and "<script>" in page


def test_the_page_is_titled_filtered_and_reminds_of_tempo(site):
    page = site["page"]
    assert re.search(r"<title>audioreg: 5 runs compared, 4 data sets</title>", page)
    options = re.findall(r'<option value="([^"]+)">', page)
    assert options[0] == "all" and sorted(options[1:]) == sorted(_sections(page))
    assert "Raw MSE averaged over targets is dominated by tempo" in page
    for body in _sections(page).values():  # a heatmap and a sortable table for every target
        assert body.count("<svg") == 1
        for target in TARGETS:
            assert f"<caption>{target}:" in body


def test_runs_table_shows_written_time_and_the_parameters_that_differ(site):
    a = _data_set(site, "sample:splitA")
    settings = lb.differing_settings(a.runs)
    assert list(settings.columns) == ["dropout"] and list(settings["dropout"]) == ["0.3", "0.5"]
    section = _section_named(site["page"], "sample set (sample), split splitA")
    assert "2025-01-01 10:00:00+0000" in section and "2025-01-02 10:00:00+0000" in section
    assert "<th title=\"click to sort\">dropout</th>" in section and "<code>0.5</code>" in section
    assert ">seed<" not in section and ">run_id<" not in section


def test_small_and_single_run_data_sets_say_so(site):
    page = site["page"]
    small = _section_named(page, "own set (own), split splitB")
    assert "too small to tell runs apart" in small and "A single run" in small
    shared = _section_named(page, "sample set (sample), split splitA")
    assert "too small to tell runs apart" not in shared and "A single run" not in shared


def test_unreadable_files_are_listed(site):
    reasons = {Path(p).parent.name: r for p, r in site["problems"]}
    assert set(reasons) == {"broken", "alist", "nometrics"}
    assert reasons["broken"].startswith("unreadable") and reasons["alist"].startswith("malformed")
    assert "no metrics" in reasons["nometrics"]
    problems = site["page"].split('<section id="problems">', 1)[1]
    for name in ("broken", "alist", "nometrics"):
        assert f"{name}/metrics.json</code>" in problems
    assert len(site["docs"]) == 5  # the good runs are all there


def test_a_copied_run_is_shown_under_its_folder(tmp_path):
    runs = tmp_path / "runs"
    _write(runs, _doc("orig", {BASELINE_NAME: 0.0, "GRU": 0.5}), folder="copy")
    (runs / "binary").mkdir()
    (runs / "binary" / "metrics.json").write_bytes(b"\xff\xfe{\x00")
    docs, problems = lb.load_runs(runs)
    assert [d["run_id"] for d in docs] == ["copy"]
    assert {Path(p).parent.name for p, _ in problems} == {"copy", "binary"}


def test_heatmap_has_a_row_per_run_and_model_and_says_what_it_shows(site):
    a = _data_set(site, "sample:splitA")
    values, metric = lb.heatmap_values(a.runs)
    assert list(values.index) == [("a1", BASELINE_NAME), ("a1", "random forest"), ("a1", "GRU"), ("a1", "dsp"),
                                  ("a2", BASELINE_NAME), ("a2", "random forest"), ("a2", "GRU")]
    assert list(values.columns) == list(TARGETS)
    assert metric["key"] == "mirex" and metric["time_signature"] == "accuracy" and metric["tempo"] == "r2"
    assert values.loc[("a2", "GRU"), "energy"] == pytest.approx(0.8)
    fig = lb.leaderboard_heatmap(a.runs)
    ax = fig.axes[0]
    assert fig.get_gid() == lb.FIGURE_ID
    assert ax.get_yticklabels()[0].get_text() == f"a1 · {BASELINE_NAME}"
    assert len([t for t in ax.texts if t.get_text()]) == values.size
    label = fig.axes[1].get_xlabel()  # the colour bar, below the map
    assert "R²" in label and "MIREX (key)" in label and "accuracy (time_signature)" in label


# ------------------------------------------------------------------------------ the command


def test_cli_writes_the_page(tmp_path, monkeypatch, capsys):
    _write(tmp_path / "runs", _doc("z", {BASELINE_NAME: 0.0, "GRU": 0.5}))
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    out = tmp_path / "reports" / "index.html"
    assert out.is_file() and "<title>audioreg: 1 run compared, 1 data set</title>" in out.read_text()
    assert str(Path("reports") / "index.html") in capsys.readouterr().out
    assert main(["report", "--runs", "runs", "--out", "elsewhere"]) == 0
    assert (tmp_path / "elsewhere" / "index.html").is_file()


def test_cli_without_a_runs_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope: no such runs folder" in err and "\n" not in err
    assert not (tmp_path / "r").exists()
