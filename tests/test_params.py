import pytest

from audioreg import params as P
from audioreg import runner
from conftest import REPO


@pytest.fixture(scope="module")
def declared():
    return runner.declared(REPO)


def test_every_notebook_has_one_parameters_cell():
    import nbformat

    for nb in runner.NOTEBOOKS:
        book = nbformat.read(str(REPO / "notebooks" / f"{nb}.ipynb"), as_version=4)
        tagged = [c for c in book.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, nb
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in book.cells if c.cell_type == "code"), nb


def test_base_yaml_declares_exactly_the_notebook_parameters(declared):
    base = P.load_yaml(REPO / "params" / "base.yaml")
    known = set().union(*[set(d) for d in declared.values()])
    assert set(base) == known


def test_notebook_defaults_equal_base_yaml(declared):
    base = P.load_yaml(REPO / "params" / "base.yaml")
    for nb in runner.NOTEBOOKS:
        defaults = P.notebook_defaults(REPO / "notebooks" / f"{nb}.ipynb")
        for k, v in defaults.items():
            assert v == base[k] and type(v) is type(base[k]), f"{nb}: {k} = {v!r}, base.yaml has {base[k]!r}"


def test_every_parameter_has_a_type_and_a_comment(declared):
    for nb, specs in declared.items():
        for name, spec in specs.items():
            assert spec["inferred_type_name"] != "None", f"{nb}: {name} has no type hint"
            assert spec["help"], f"{nb}: {name} has no comment"


@pytest.mark.parametrize("name", ["rf", "gru_exp1", "gru_exp2", "gru_exp3", "smoke"])
def test_experiment_files_use_known_keys(declared, name):
    known = set().union(*[set(d) for d in declared.values()])
    P.check_known(P.load_yaml(REPO / "params" / f"{name}.yaml"), known, source=name)


def test_gru_experiments_are_as_specified():
    want = {"gru_exp1": (256, 0.001, 0.3), "gru_exp2": (512, 0.0005, 0.3), "gru_exp3": (256, 0.001, 0.5)}
    for name, (hidden, lr, dropout) in want.items():
        p = P.load_yaml(REPO / "params" / f"{name}.yaml")
        assert (p["hidden_size"], p["lr"], p["dropout"], p["num_layers"]) == (hidden, lr, dropout, 5)


def test_precedence_base_then_files_then_overrides(declared):
    known = set().union(*[set(d) for d in declared.values()])
    merged = runner.merged_params(REPO, ["params/gru_exp3.yaml"], {"dropout": "0.4", "epochs": "2"}, known=known)
    assert merged["dropout"] == 0.4 and merged["epochs"] == 2 and merged["num_layers"] == 5
    assert merged["hidden_size"] == 256 and merged["seed"] == 0


def test_unknown_key_is_an_error_with_a_suggestion(declared):
    known = set().union(*[set(d) for d in declared.values()])
    with pytest.raises(P.UnknownParameterError, match=r"'dropuot' \(did you mean 'dropout'\?\) in -p overrides"):
        runner.merged_params(REPO, [], {"dropuot": "0.5"}, known=known)


def test_unknown_key_in_a_file(tmp_path, declared):
    known = set().union(*[set(d) for d in declared.values()])
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden_size: 64\n")
    with pytest.raises(P.UnknownParameterError, match=r"'hiden_size' \(did you mean 'hidden_size'\?\) in .*bad\.yaml"):
        runner.merged_params(REPO, [bad], {}, known=known)


def test_cli_rejects_unknown_parameter_before_running(capsys):
    from audioreg.cli import main

    assert main(["run", "-p", "dropuot", "0.5"]) == 2
    assert "unknown parameter 'dropuot'" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("0.5", 0.5), ("3", 3), ("true", True), ("abc", "abc"), ("", None)])
def test_parse_value(text, value):
    assert P.parse_value(text) == value


def test_pick_takes_simple_public_names_over_base_yaml():
    ns = {"a": 1, "b": "x", "_c": 2, "mod": P, "d": [1], "e": 0.5, "f": True, "lr": 0.5}
    base = P.load_yaml(REPO / "params" / "base.yaml")
    assert P.pick(ns) == {**base, "a": 1, "b": "x", "e": 0.5, "f": True, "lr": 0.5}


def test_a_notebook_reads_upstream_settings_from_its_run_and_records_its_own(tmp_path):
    """Each notebook declares only its own settings: 01 run alone with another sample-set size,
    then 05 run alone, sees that size (from runs/<run_id>/params.yaml), not base.yaml's."""
    base = P.load_yaml(REPO / "params" / "base.yaml")
    ingest = {"root": str(tmp_path), "run_id": "r1", "seed": 0, "synth_n": 12, "metadata_path": "m.csv"}
    got = P.run_params(ingest)
    assert got == {**base, **ingest}
    saved = tmp_path / "runs" / "r1" / "params.yaml"
    assert P.load_yaml(saved) == ingest  # what 01 set, nothing it did not
    gru = {"root": str(tmp_path), "run_id": "r1", "seed": 0, "lr": 0.01, "scratch": "not a parameter"}
    got = P.run_params(gru)
    assert got["synth_n"] == 12 and got["metadata_path"] == "m.csv" and got["lr"] == 0.01
    assert got["hidden_size"] == base["hidden_size"] and got["scratch"] == "not a parameter"
    assert P.load_yaml(saved) == {**ingest, "lr": 0.01}  # a name base.yaml lacks is not recorded
    # another run id starts from base.yaml again
    assert P.run_params({**gru, "run_id": "r2"})["synth_n"] == base["synth_n"]
    # the notebook's own value wins over the run's
    assert P.run_params({**ingest, "synth_n": 30})["synth_n"] == 30
    assert P.load_yaml(saved)["synth_n"] == 30


def test_estimator_defaults_are_the_run_defaults():
    """The model settings' defaults are written in the estimators; base.yaml (and so the
    notebooks' parameters cells) must give the same values. (``progress`` is not a model
    setting: a run shows bars, a library call stays quiet.)"""
    from audioreg.models import ForestRegressor, GRURegressor

    base = P.load_yaml(REPO / "params" / "base.yaml")
    for cls in (ForestRegressor, GRURegressor):
        from_base = P.estimator_settings(cls, base)
        from_base.pop("progress", None)
        assert len(from_base) >= 4, cls
        defaults = cls().get_params()
        assert {k: defaults[k] for k in from_base} == from_base, cls


@pytest.mark.parametrize("key, value, message", [
    ("dropout", "abc", r"dropout must be float, not 'abc' \(str\)"),
    ("epochs", "2.5", r"epochs must be int, not 2\.5 \(float\)"),
    ("layer_norm", "1", r"layer_norm must be bool, not 1 \(int\)"),
    ("workers", "true", r"workers must be int, not True \(bool\)"),
])
def test_a_wrong_type_fails_before_any_notebook_runs(declared, key, value, message):
    with pytest.raises(ValueError, match=r"wrong type in -p overrides: " + message):
        runner.merged_params(REPO, [], {key: value}, known=runner.known_parameters(declared))
    # an int where a float is declared is a number like any other
    assert runner.merged_params(REPO, [], {"dropout": "1"}, known=runner.known_parameters(declared))["dropout"] == 1


def test_cli_params_rejects_a_wrong_type(capsys):
    from audioreg.cli import main

    assert main(["params", "-p", "dropout", "abc"]) == 2
    assert "dropout must be float, not 'abc'" in capsys.readouterr().err


def test_one_type_per_parameter_across_notebooks():
    decl = {"04_rf": {"seed": {"inferred_type_name": "int"}}, "05_gru": {"seed": {"inferred_type_name": "float"}}}
    with pytest.raises(ValueError, match="seed is declared as int and as float"):
        runner.known_parameters(decl)


def test_a_notebook_refuses_a_parameter_it_does_not_declare():
    """What IPython's ``In`` holds when papermill ran the parameters cell, then its injected cell."""
    parameters = "seed: int = 0  # the one seed\ndropout: float = 0.3  # between layers\n"
    P.check_injected(["", parameters, "# Parameters\ndropout = 0.5\nseed = 1\n"])  # declared: fine
    with pytest.raises(P.UnknownParameterError, match=r"'dropuot' \(did you mean 'dropout'\?\) in the parameters "
                                                       r"papermill injected: this notebook's parameters cell"):
        P.check_injected(["", parameters, "# Parameters\ndropuot = 0.5\n", "params = pick(globals())"])
    P.check_injected(None)  # outside a kernel: nothing to check
    P.check_injected(["", "%matplotlib inline", "# Parameters\nx = 1\n"])  # unreadable cells are not judged
