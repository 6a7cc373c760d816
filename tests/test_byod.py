"""The worked example of "Your own data": a messy Kaggle-layout table for real tracks of
../shared/data, taken through ingest, extraction, the experts, the split and the model stages."""

from __future__ import annotations

import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audioreg.data.tables import LAYOUTS
from audioreg.targets import TARGETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: (shared file, track_id, artists, title, how the file is laid out on disk)
#: layouts: "id" (<track_id>.<ext>), "at" (artist - title, NFD, upper-case extension, nested),
#: "path" (a path column), "second" (named after the second credited artist).
TRACKS = [
    ("real/mir_fixtures/madmom_sample.wav", "4uLU6hMCjMI75M1A2tKUQC", "Madmöm Ensemble", "Sample Beat", "at"),
    ("real/mir_fixtures/fma_000010.mp3", "0aB1cD2eF3gH4iJ5kL6mN7", "Fréderic Mâle", "Ten", "id"),
    ("real/mir_fixtures/giantsteps_key_10089.mp3", "1bC2dE3fG4hI5jK6lM7nO8", "Fréderic Mâle", "Key Change", "at"),
    ("real/librosa_examples/sorohanro_-_solo-trumpet-06.hq.ogg", "2cD3eF4gH5iJ6kL7mN8oP9", "Sorohanro", "Solo Trumpet", "path"),
    ("real/speech/198-209-0000.hq.ogg", "3dE4fG5hI6jK7lM8nO9pQ0", "Ärzte Reading Club", "Chapter One", "at"),
    ("real/speech/5703-47212-0000.hq.ogg", "4eF5gH6iJ7kL8mN9oP0qR1", "Ärzte Reading Club;Zoë Voice", "Chapter Two", "second"),
    ("real/speech/3436-172162-0000.hq.ogg", "5fG6hI7jK8lM9nO0pQ1rS2", "Noël Narrator", "Chapter Three", "id"),
    ("real/librosa_examples/admiralbob77_-_Choice_-_Drum-bass.hq.ogg", "6gH7iJ8kL9mN0oP1qR2sT3", "Admiral Bob", "Choice", "at"),
    ("music/hyperrogue-music__tada.ogg", "7hI8jK9lM0nO1pQ2rS3tU4", "HyperRogue", "Tada", "id"),
    ("real/mir_fixtures/gtzan_country.00000.wav", "8iJ9kL0mN1oP2qR3sT4uV5", "Country Crew", "Dusty Road", "at"),
    ("real/mir_fixtures/ballroom_Waltz_Media-105901.wav", "9jK0lM1nO2pQ3rS4tU5vW6", "Ballroom Trio", "Slow Waltz", "path"),
    ("real/mir_fixtures/giantsteps_tempo_28952.LOFI.mp3", "AkL1mN2oP3qR4sT5uV6wX7", "Lo Fi Kid", "Tempo Study", "id"),
]
NO_AUDIO = ("BlM2nO3pQ4rS5tU6vW7xY8", "Ghost Band", "Not Here")
BROKEN = ("CmN3oP4qR5sT6uV7wX8yZ9", "Broken Records", "Static")


def build_collection(shared: Path, root: Path) -> tuple[Path, Path]:
    """A table as a user might have it and a folder laid out as users' folders are: the
    Kaggle layout (unnamed index, ``;``-joined artists, a genre column), one track listed under
    two genres, a row without audio, a broken file, targets present on only some rows, NFC in
    the table and NFD on disk, upper-case extensions, nested folders, spaces."""
    audio = root / "My Music"
    rows = []
    rng = np.random.default_rng(0)
    for k, (src, tid, artists, title, layout) in enumerate(TRACKS):
        ext = Path(src).suffix
        if layout == "id":
            dest = audio / "by id" / f"{tid}{ext}"
        elif layout == "second":
            dest = audio / f"{artists.split(';')[1]} - {title}{ext}"
        else:
            first = artists.split(";")[0]
            dest = audio / first[0] / first / unicodedata.normalize("NFD", f"{first} - {title}{ext.upper()}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / src, dest)
        labels = {t: float(rng.uniform(0.05, 0.95)) for t in TARGETS}
        labels.update(tempo=float(rng.uniform(70, 170)), loudness=float(rng.uniform(-20, -5)),
                      key=float(rng.integers(0, 12)), time_signature=4.0)
        if k % 2:  # targets present on only some rows
            labels.update(liveness=np.nan, valence=np.nan)
        if k == 3:
            labels["tempo"] = 0.0  # Spotify's "no beat detected": masked, the row kept
        rows.append({"track_id": tid, "artists": artists, "album_name": "Real Things", "track_name": title,
                     "popularity": 10 + k, "duration_ms": 1000, "explicit": False, **labels,
                     "mode": float(k % 2), "track_genre": "world",
                     "path": os.path.relpath(dest, root) if layout == "path" else ""})
    rows.append({**rows[1], "track_genre": "folk"})  # the same track under another genre
    for tid, artist, title in (NO_AUDIO, BROKEN):
        rows.append({**rows[0], "track_id": tid, "artists": artist, "track_name": title, "path": ""})
    (audio / "by id" / f"{BROKEN[0]}.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)  # not decodable
    shutil.copyfile(shared / "music/hyperrogue-music__hr3-crossroads.ogg", audio / "unlisted.ogg")  # no row names it
    table = pd.DataFrame(rows)
    table = table[[c for c in LAYOUTS["spotify-tracks"] if c] + ["path"]]
    path = root / "dataset.csv"
    table.to_csv(path, index=True)  # the Kaggle table's unnamed index column
    return path, audio


def test_a_messy_real_collection_goes_through_the_chain(shared_data, tmp_path):
    from audioreg import stages
    from audioreg.data.split import leakage_groups
    from audioreg.judge import metrics
    from audioreg.models import ForestRegressor, GRURegressor

    table, audio = build_collection(shared_data, tmp_path)
    params = {"root": str(tmp_path / "work"), "metadata_path": str(table), "audio_dir": str(audio),
              "generate_sample": False, "progress": False, "workers": 1, "val_fraction": 0.2, "test_fraction": 0.2}
    ing = stages.ingest(params)
    links = ing.manifest.set_index("track_id")["link"]
    assert len(ing.manifest) == len(TRACKS)
    assert {links[tid] for _, tid, _, _, layout in TRACKS if layout == "at"} == {"artist - title"}
    assert {links[tid] for _, tid, _, _, layout in TRACKS if layout == "id"} == {"track_id file name"}
    assert {links[tid] for _, tid, _, _, layout in TRACKS if layout == "path"} == {"path column"}
    assert links[TRACKS[5][1]] == "artist - title"  # by its second credited artist
    problems = ing.problems.set_index("track_id")
    assert "duplicate of row" in problems.loc[TRACKS[1][1], "reason"]
    assert problems.loc[NO_AUDIO[0], "stage"] == "link" and "tried" in problems.loc[NO_AUDIO[0], "reason"]
    assert problems.loc[BROKEN[0], "stage"] == "probe"
    assert problems.loc[TRACKS[3][1], "action"] == "label masked"
    assert "Spotify's 0: no beat detected" in problems.loc[TRACKS[3][1], "reason"]
    assert ing.meta["removed_as_repeats"]["id"] == 1
    assert ing.unmatched["path"].tolist() == ["unlisted.ogg"]
    labelled = stages.label_counts(ing.manifest)["all"]
    assert labelled["liveness"] == len(TRACKS) // 2 and labelled["tempo"] == len(TRACKS) - 1
    assert labelled["energy"] == len(TRACKS)

    sp = stages.split(params)
    counts = stages.check_model_data(sp.table)
    assert set(sp.table["split"]) == {"train", "val", "test"} and counts["all"].sum() > 0
    train, val, test = (stages.part(sp.table, s) for s in ("train", "val", "test"))
    forest = ForestRegressor(n_iter=1, cv=2, n_jobs=1).fit(stages.song_features(train, experts=True),
                                                         stages.targets(train), groups=leakage_groups(train))
    pred = forest.predict(stages.song_features(test, experts=True))
    gru = GRURegressor(hidden_size=8, num_layers=1, dropout=0.0, epochs=1, batch_size=4, frame_pool=8, key_classes=True)
    gru.fit(stages.model_sequences(train, experts=True), stages.labels(train),
            eval_set=(stages.model_sequences(val, experts=True), stages.labels(val)))
    scores = metrics.compare_models(stages.targets(test), {
        "mean baseline": metrics.mean_baseline(stages.targets(train), len(test)), "random forest": pred,
        "GRU": gru.predict(stages.model_sequences(test, experts=True))}, y_train=stages.targets(train))
    n = scores.xs("random forest")["n"]
    assert n["energy"] == len(test) and n["liveness"] == test["liveness"].notna().sum()
