import pandas as pd
import yaml

from audioreg.cli import main
from audioreg.targets import METADATA_COLUMNS


def test_synth_command_writes_a_sample_set(tmp_path, capsys):
    out = tmp_path / "sample"
    assert main(["synth", "--n", "4", "--seconds", "1.5", "--seed", "3", "--out", str(out)]) == 0
    df = pd.read_csv(out / "metadata.csv")
    assert list(df.columns[: len(METADATA_COLUMNS)]) == list(METADATA_COLUMNS) and len(df) == 4
    assert all((out / p).is_file() for p in df["path"])
    assert "wrote 4 tracks" in capsys.readouterr().out


def test_params_command_prints_the_merged_parameters(capsys):
    assert main(["params", "-f", "params/gru_exp3.yaml", "-p", "dropout", "0.45"]) == 0
    merged = yaml.safe_load(capsys.readouterr().out)
    assert merged["dropout"] == 0.45 and merged["num_layers"] == 5 and merged["metadata_path"] == "data/raw/sample/metadata.csv"


def test_missing_parameter_file_is_a_clear_error(capsys):
    assert main(["params", "-f", "params/nope.yaml"]) == 2
    assert "params/nope.yaml: parameter file not found" in capsys.readouterr().err
