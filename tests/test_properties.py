"""Property-based tests (hypothesis) of the metadata reader, the linker's name keys and the metrics.

Every test uses ``PROPS``: derandomized and database-less, so CI sees the same examples on
every run, with no deadline (the machine is shared) and few enough examples to stay fast.
"""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from fractions import Fraction
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audioreg.data import linking, metadata, tables
from audioreg.judge import metrics
from audioreg.targets import TARGETS, VALID_RANGES

PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])

WHOLE = ("key", "time_signature")
NFC = lambda text: unicodedata.normalize("NFC", text)  # noqa: E731

# ================================================================== metadata: read_metadata + validate_labels
#: Text with anything a CSV cell can hold: unicode, commas, quotes, line breaks (not NUL, not surrogates).
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)
_IDS = st.one_of(st.sampled_from(["a", "b", "NA", "None", "null", "", "  ", "x,y", 'q"t', "l\nm", "r\rs", " a",
                                  unicodedata.normalize("NFD", "é"), NFC("é")]), _TEXT)
#: Cells that are not numbers: the first three read as missing, the others as text.
_NOT_NUMBERS = ["N/A", "nan", " ", "fast", "1,5", "none", "12 BPM", "0x1", 'a "b"']


def _valid(t):
    lo, hi = VALID_RANGES[t]
    return st.integers(int(lo), int(hi)).map(float) if t in WHOLE else st.floats(lo, hi)


def _fuzzed(t):
    return st.one_of(_valid(t), st.floats(), st.none(), st.sampled_from(_NOT_NUMBERS),
                     st.floats(-1e4, 1e4).filter(lambda v: not VALID_RANGES[t][0] <= v <= VALID_RANGES[t][1]))


_good_row = st.fixed_dictionaries({"track_id": _IDS, "artists": st.one_of(st.none(), _TEXT),
                                   "track_name": _TEXT, **{t: _valid(t) for t in TARGETS}})
_fuzz_row = st.fixed_dictionaries({"track_id": _IDS, "artists": st.one_of(st.none(), _TEXT),
                                   "track_name": _TEXT, **{t: _fuzzed(t) for t in TARGETS}})
_EXTRA_NAMES = st.one_of(st.sampled_from(["mode", "", " ", "row", "parse_error", "tempo", " key", "track_genre"]),
                         _TEXT)


@st.composite
def _tables(draw):
    rows = draw(st.lists(st.one_of(_good_row, _good_row, _fuzz_row), max_size=10))
    if rows and draw(st.booleans()):  # repeat some ids (same or other labels)
        rows += [dict(draw(st.sampled_from(rows))) for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            rows[-1]["energy"] = 0.123
    extra = draw(st.lists(_EXTRA_NAMES, max_size=2))
    names = draw(st.permutations(["track_id", "artists", "track_name", *TARGETS, *extra]))
    cells = [[r[n] if n in r else draw(_TEXT) for n in names] for r in rows]
    return (names, cells, draw(st.sampled_from(["utf-8", "utf-8-sig"])), draw(st.sampled_from(["\n", "\r\n"])),
            draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))


def _line_breaks(text: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", text))


def _number(cell) -> float:
    return float(cell) if isinstance(cell, float) else math.nan


def _is_missing(cell) -> bool:
    if isinstance(cell, str):
        return cell.strip() in {"", "nan", "N/A"}
    return cell is None or math.isnan(cell)


def _masked(labels: np.ndarray) -> np.ndarray:
    """``labels`` with the cells validate_labels masks set to NaN (outside the range, not whole)."""
    out = labels.copy()
    for j, t in enumerate(TARGETS):
        lo, hi = VALID_RANGES[t]
        v = out[:, j]
        with np.errstate(invalid="ignore"):
            bad = (v < lo) | (v > hi) | ((v != np.round(v)) if t in WHOLE else False)
        v[bad & ~np.isnan(v)] = np.nan
    return out


_DROPS = {"missing", "duplicate of", "also at"}


def _expected_problems(ids: list, labels: np.ndarray, rows: list[int], cells: list[list]) -> dict[int, list[tuple]]:
    """The reasons validate_labels must give, as (kind, column or rows) in order, keyed by row."""
    out: dict[int, list[tuple]] = {r: [] for r in rows}
    for i, tid in enumerate(ids):
        if not tid:
            out[rows[i]].append(("missing", "track_id"))
    masked = _masked(labels)
    groups: dict[str, list[int]] = {}
    for i, tid in enumerate(ids):
        if tid:
            groups.setdefault(tid, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        if all(np.array_equal(masked[i], masked[members[0]], equal_nan=True) for i in members[1:]):
            for i in members[1:]:
                out[rows[i]].append(("duplicate of", (rows[members[0]],)))
        else:
            for i in members:
                out[rows[i]].append(("also at", tuple(rows[j] for j in members if j != i)[:5]))
    for j, t in enumerate(TARGETS):
        lo, hi = VALID_RANGES[t]
        for i, v in enumerate(labels[:, j]):
            if math.isnan(v):
                if not _is_missing(cells[i][j]):
                    out[rows[i]].append(("not a number", t))
            elif not lo <= v <= hi:
                out[rows[i]].append(("outside", t, v))
            elif t in WHOLE and v != round(v):
                out[rows[i]].append(("whole", t, v))
    return {r: kinds for r, kinds in out.items() if kinds}


_REASON_PATTERNS = [
    (re.compile(r"missing track_id$"), lambda m: ("missing", "track_id")),
    (re.compile(r"duplicate of row (\d+) \(same track_id and labels\)$"), lambda m: ("duplicate of", (int(m[1]),))),
    (re.compile(r"track_id also at rows? ([\d, ]+?)(?: and \d+ more)? with different labels$"),
     lambda m: ("also at", tuple(int(r) for r in m[1].split(", ")))),
    (re.compile(r"(\w+) is missing \(empty or NaN\)$"), lambda m: ("missing", m[1])),
    (re.compile(r"(\w+) is not a number \('.*'\)$", re.S), lambda m: ("not a number", m[1])),
    (re.compile(r"(\w+)=(\S+) outside \[\S+, \S+\]( \(Spotify's .*\))?$"), lambda m: ("outside", m[1], float(m[2]))),
    (re.compile(r"(\w+)=(\S+) is not a whole number$"), lambda m: ("whole", m[1], float(m[2]))),
]


def _parse_reason(reason: str) -> list[tuple]:
    parts = []
    for part in re.split(r"; (?=missing|duplicate|track_id|\w+ is |\w+=)", reason):
        for pattern, kind in _REASON_PATTERNS:
            if m := pattern.match(part):
                parts.append(kind(m))
                break
        else:
            raise AssertionError(f"unexpected reason {part!r} in {reason!r}")
    return parts


def _written(folder, table):
    """A generated table (:func:`_tables`) written to ``folder/metadata.csv``: ``(path, frame,
    newline, quoting)`` as written."""
    names, cells, encoding, newline, quoting = table
    path = folder / "metadata.csv"
    frame = pd.DataFrame(cells, columns=names, dtype=object)
    if newline == "\n" and any("\r" in str(v) for v in [*names, *frame.to_numpy().ravel()]):
        quoting = csv.QUOTE_ALL  # Python < 3.12 leaves a lone \r unquoted when lines end in \n: a broken CSV
    frame.to_csv(path, index=False, encoding=encoding, lineterminator=newline, quoting=quoting)
    return path, frame, newline, quoting


@PROPS
@given(_tables())
def test_metadata_rows_are_all_accounted_for(tmp_path_factory, table):
    names, cells = table[:2]
    path, frame, newline, quoting = _written(tmp_path_factory.mktemp("meta"), table)

    stripped = [n.strip() for n in names if n.strip()]
    file_level = len(set(stripped)) < len(stripped) or set(stripped) & set(metadata.ADDED_COLUMNS) or not cells
    if file_level:
        with pytest.raises(metadata.MetadataError) as info:
            metadata.read_metadata(path)
        assert str(info.value).startswith(f"{path}: ")
        return
    df = metadata.read_metadata(path)  # any exception here fails the test

    # one row per record, named by the line it starts on
    first = 1 + _line_breaks(frame.iloc[:0].to_csv(index=False, lineterminator=newline, quoting=quoting))
    lengths = [_line_breaks(frame.iloc[[i]].to_csv(index=False, header=False, lineterminator=newline, quoting=quoting))
               for i in range(len(frame))]
    assert df["row"].tolist() == list(np.cumsum([first, *lengths[:-1]]))
    assert df["parse_error"].isna().all()
    assert len(df) == len(cells)

    # text stays text (NFC, the id stripped; only an empty cell is missing), labels keep their value
    col = {n: j for j, n in enumerate(names)}
    ids = [NFC((c[col["track_id"]] or "").strip()) for c in cells]
    assert [v if isinstance(v, str) else "" for v in df["track_id"]] == ids
    assert [v if isinstance(v, str) else "" for v in df["artists"]] == \
           [";".join(tables.artist_names(c[col["artists"]])) for c in cells]
    labels = np.array([[_number(c[col[t]]) for t in TARGETS] for c in cells], dtype=np.float64).reshape(len(cells), -1)
    read = np.column_stack([pd.to_numeric(df[t], errors="coerce").to_numpy(dtype=np.float64) for t in TARGETS])
    np.testing.assert_array_equal(read, labels)

    # every bad row listed once, naming the row, the column and the reason; every other row kept
    problems = metadata.validate_labels(df)
    rows = df["row"].tolist()
    assert problems["row"].is_unique and set(problems["row"]) <= set(rows)
    expected = _expected_problems(ids, labels, rows, [[c[col[t]] for t in TARGETS] for c in cells])
    got = {r: _parse_reason(reason) for r, reason in zip(problems["row"], problems["reason"])}
    assert got == expected
    actions = dict(zip(problems["row"], problems["action"]))
    assert actions == {r: metadata.ROW_DROPPED if {k[0] for k in kinds} & _DROPS else metadata.LABEL_MASKED
                       for r, kinds in expected.items()}
    by_row = df.set_index("row")["track_id"]
    assert [by_row[r] if isinstance(by_row[r], str) else "" for r in problems["row"]] == \
           [t if isinstance(t, str) else "" for t in problems["track_id"]]
    kept = metadata.usable_rows(df, problems)
    assert len(kept) + list(actions.values()).count(metadata.ROW_DROPPED) == len(cells)
    np.testing.assert_array_equal(kept[list(TARGETS)].to_numpy(dtype=np.float64),
                                  _masked(labels)[df["row"].isin(kept["row"]).to_numpy()])
    for t in TARGETS:
        lo, hi = VALID_RANGES[t]
        assert kept[t].dropna().between(lo, hi).all()
    assert kept["track_id"].is_unique
    counts = metadata.label_counts(kept)
    assert counts.tolist() == [int(kept[t].notna().sum()) for t in TARGETS]


_VALID_CSV = ",".join(["track_id", "artists", *TARGETS]) + "\n" + "\n".join(
    f'{tid},"Artist, {tid}",0.5,0.5,0.5,120,0.1,0.1,0.1,0.1,-8,4,{k}' for k, tid in enumerate("abcde")) + "\n"
_EDITS = st.lists(st.tuples(st.floats(0, 1), st.sampled_from([",", '"', "\n", "\r", "\r\n", "é", "\ufeff", ";",
                                                              " ", "\t", None])), min_size=1, max_size=6)


def _check_loaded_or_refused(path) -> None:
    """Load ``path`` or raise MetadataError naming it; a load accounts for every record."""
    try:
        df = metadata.read_metadata(path)
    except metadata.MetadataError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    text = path.read_bytes().decode("utf-8-sig")
    records = [r for r in csv.reader(StringIO(text, newline=""), strict=True) if r and (len(r) > 1 or r[0].strip())]
    assert len(df) == len(records) - 1  # every record but the header is a row
    assert df["row"].is_monotonic_increasing and df["row"].is_unique and (df["row"] >= 2).all()
    problems = metadata.validate_labels(df)
    assert problems["row"].is_unique and set(problems["row"]) <= set(df["row"])
    assert set(df.loc[df["parse_error"].notna(), "row"]) <= set(problems["row"])
    assert not problems["reason"].str.len().eq(0).any()


@PROPS
@given(_EDITS)
def test_mangled_csv_loads_or_names_the_file(tmp_path_factory, edits):
    _check_loaded_or_refused(_mangled(tmp_path_factory.mktemp("mangled"), _VALID_CSV, edits))


def _mangled(folder, text: str, edits):
    """``text`` with each ``(where, insert)`` edit applied (an empty insert deletes a character),
    written to ``folder/metadata.csv``."""
    for where, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at:] if insert else text[:at] + text[at + 1:]
    path = folder / "metadata.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


@PROPS
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: _VALID_CSV.encode() + b),
                 st.text(max_size=100).map(lambda t: (_VALID_CSV + t).encode("utf-8", "surrogatepass"))))
def test_arbitrary_bytes_load_or_name_the_file(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("bytes") / "metadata.csv"
    path.write_bytes(raw)
    _check_loaded_or_refused(path)


def _fast_and_exact_agree(path) -> None:
    """read_metadata (NumPy scan + pyarrow when the quoting is regular) gives what Python's csv
    module gives record by record: the same frame, or the same error."""
    raw = path.read_bytes()
    got = []
    for read in (lambda: metadata.read_metadata(path),
                 lambda: metadata._read_exact(path, raw[metadata._check_bytes(path, raw):].decode("utf-8"),
                                              metadata._detect_delimiter(raw, metadata._check_bytes(path, raw)))):
        try:
            got.append(read())
        except metadata.MetadataError as exc:
            got.append(str(exc))
    if isinstance(got[0], str) or isinstance(got[1], str):
        assert got[0] == got[1]  # the same whole-file error
        return
    pd.testing.assert_frame_equal(got[0], got[1])
    assert got[0].attrs == got[1].attrs


_SEMICOLON_CSV = _VALID_CSV.replace(",", ";").replace('"Artist; ', '"Artist, ')


@PROPS
@given(_EDITS, st.sampled_from([_VALID_CSV, _SEMICOLON_CSV]))
def test_fast_reader_reads_what_the_csv_module_reads(tmp_path_factory, edits, text):
    _fast_and_exact_agree(_mangled(tmp_path_factory.mktemp("fast"), text, edits))


@PROPS
@given(_tables())
def test_fast_reader_reads_written_tables_as_the_csv_module_does(tmp_path_factory, table):
    _fast_and_exact_agree(_written(tmp_path_factory.mktemp("fast"), table)[0])


# ================================================================== linker: normalize_name and friends
_ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
#: Letters, digits, accents, spaces and punctuation of everyday names, in several scripts.
_NAME_CHARS = st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x24F),  # Latin
                        st.characters(min_codepoint=0x370, max_codepoint=0x3FF),  # Greek
                        st.characters(min_codepoint=0x400, max_codepoint=0x4FF),  # Cyrillic
                        st.characters(min_codepoint=0x900, max_codepoint=0x97F),  # Devanagari
                        st.characters(min_codepoint=0x300, max_codepoint=0x36F),  # combining accents
                        st.sampled_from("한국어日本語—–‐−_/&'’!?()[]\t\u00a0\u3000ﬁＡ"))
_NAMES = st.text(_NAME_CHARS, max_size=30)


def _caseless_safe(text: str) -> bool:
    # Turkish dotless ı uppercases to I, another letter; a Greek iota subscript (U+0345) is
    # reordered against other accents by case folding (Unicode's folding and normalization
    # do not commute there). Neither is a casing of the same name.
    return "ı" not in text and "\u0345" not in unicodedata.normalize("NFD", text)


@PROPS
@given(_ANY_TEXT)
def test_name_keys_are_idempotent_nfc_and_trimmed(text):
    key = linking.normalize_name(text)
    assert linking.normalize_name(key) == key
    assert unicodedata.normalize("NFC", key) == key
    assert key == key.strip() and "  " not in key and "_" not in key
    assert all(c in " -" or unicodedata.category(c)[0] in "LMN" for c in key)  # letters, marks, digits
    stem = linking.stem_key(text)
    assert linking.stem_key(stem) == stem and "-" not in stem
    assert stem == " ".join(key.replace("-", " ").split())


@PROPS
@given(_ANY_TEXT)
def test_name_keys_ignore_the_unicode_spelling(text):
    key = linking.normalize_name(text)
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        assert linking.normalize_name(unicodedata.normalize(form, text)) == key, form


@PROPS
@given(_NAMES)
def test_name_keys_ignore_case(text):
    assume(_caseless_safe(text))
    key = linking.normalize_name(text)
    assert linking.normalize_name(text.upper()) == key
    assert linking.normalize_name(text.lower()) == key
    assert linking.normalize_name(text.casefold()) == key
    assert linking.stem_key(text.upper()) == linking.stem_key(text)


@PROPS
@given(st.lists(st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8), min_size=1, max_size=5),
       st.lists(st.sampled_from([" ", "  ", "\t", "_", "\u00a0", "\u3000", "\n", " _ "]), min_size=5, max_size=5))
def test_name_keys_ignore_spacing(words, gaps):
    one = " ".join(words)
    many = gaps[0] + "".join(w + gaps[(i + 1) % len(gaps)] for i, w in enumerate(words))
    assert linking.normalize_name(many) == linking.normalize_name(one)


_PUNCTUATION = st.characters(categories=["P", "S"]).filter(
    lambda c: unicodedata.normalize("NFKC", c) == c and unicodedata.category(c) != "Pd" and c not in "_\u2212")
_DASH = st.characters(categories=["Pd"]).filter(lambda c: unicodedata.normalize("NFKC", c) == c) | st.just("\u2212")
_WORD = st.text(st.characters(categories=["Ll", "Lo", "Nd"]), min_size=1, max_size=6).filter(
    lambda w: linking.normalize_name(w) == w)


@PROPS
@given(_WORD, _WORD, _PUNCTUATION, _DASH, st.sampled_from(["\u00ad", "\u200b", "\u200d", "\ufeff", "\u2060"]))
def test_punctuation_separates_dashes_unify_and_invisible_marks_vanish(a, b, punct, dash, invisible):
    assert linking.normalize_name(f"{a}{punct}{b}") == f"{a} {b}"
    assert linking.normalize_name(f"{a}{dash}{b}") == f"{a}-{b}"
    assert linking.normalize_name(f"{a} {dash} {b}") == f"{a} - {b}"
    assert linking.stem_key(f"{a}{dash}{b}") == f"{a} {b}"
    assert linking.normalize_name(f"{a}{invisible}{b}") == linking.normalize_name(f"{a}{b}")  # NFC may join a and b


def test_name_keys_keep_letters_accents_and_vowel_signs():
    assert linking.normalize_name("हिन्दी गाना") == "हिन्दी गाना"  # vowel signs and virama are not punctuation
    assert linking.normalize_name("Björk — Jóga") == "björk - jóga"
    assert linking.normalize_name("ＡＢＣ ﬁre") == "abc fire"
    assert linking.normalize_name("  AC/DC   Back_in_Black ") == "ac dc back in black"


@PROPS
@given(_NAMES, _NAMES, st.lists(_NAMES, max_size=3))
def test_artist_title_key_uses_the_first_artist(artist, title, others):
    assume(";" not in artist and _caseless_safe(artist + title))
    key = linking.artist_title_key(";".join([artist, *others]), title)
    assert key == linking.stem_key(f"{artist} - {title}")
    assert key == linking.artist_title_key(unicodedata.normalize("NFD", artist.upper()), title.lower())
    assert key == linking.stem_key(f"{artist}_{title}")


# ================================================================== metrics
_TEMPO = st.floats(1.0, 300.0)
_INSIDE = st.floats(-0.039, 0.039)  # relative error safely inside the 4 % tolerance


@PROPS
@given(st.lists(st.tuples(_TEMPO, _INSIDE), min_size=1, max_size=20))
def test_acc2_forgives_double_half_triple_and_third(pairs):
    ref = np.array([r for r, _ in pairs])
    est = ref * (1.0 + np.array([u for _, u in pairs]))
    assert metrics.tempo_acc1(ref, est) == 1.0
    for factor in (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0):
        assert metrics.tempo_acc2(ref, factor * est) == 1.0, factor
    assert metrics.tempo_acc1(ref, 2.0 * est) == 0.0 and metrics.tempo_acc1(ref, 0.5 * est) == 0.0


def _near_a_factor(ratio: float, margin: float) -> bool:
    return any(abs(ratio - f) <= (0.04 + margin) * f for f in metrics.TEMPO_FACTORS)


@PROPS
@given(_TEMPO, st.floats(0.05, 10.0))
def test_acc1_and_acc2_miss_away_from_the_tolerance(ref, ratio):
    assume(not _near_a_factor(ratio, 1e-6))
    assert not metrics.tempo_hits2([ref], [ref * ratio])[0]
    if abs(ratio - 1.0) > 0.04 + 1e-6:
        assert not metrics.tempo_hits1([ref], [ref * ratio])[0]


@pytest.mark.parametrize("est, hit", [(104.0, True), (96.0, True), (104.01, False), (95.99, False),
                                      (208.0, False), (200.0, False)])
def test_acc1_tolerance_is_four_percent_inclusive(est, hit):
    assert bool(metrics.tempo_hits1([100.0], [est])[0]) is hit
    assert metrics.tempo_acc1([100.0], [est]) == float(hit)


@PROPS
@given(st.lists(st.tuples(_TEMPO, st.floats(0.0, 1000.0)), min_size=1, max_size=20), st.floats(0.0, 0.2))
def test_tempo_hits_are_exactly_scale_free_by_powers_of_two(pairs, tol):
    ref, est = (np.array(column) for column in zip(*pairs))
    for scale in (2.0, 0.5, 1024.0):
        for hits in (metrics.tempo_hits1, metrics.tempo_hits2):
            assert np.array_equal(hits(scale * ref, scale * est, tol=tol), hits(ref, est, tol=tol)), (scale, hits)


def _round_half_up_exact(value: float) -> int:
    return math.floor(Fraction(value) + Fraction(1, 2))


_ESTIMATES = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18)
_EDGES = st.sampled_from([0.49999999999999994, 0.5, -0.5, 11.5, 2.0**52 + 1, -(2.0**52) - 1, 4.5, 3.4999999999999996])


@PROPS
@given(st.lists(st.tuples(st.integers(0, 11), _ESTIMATES | _EDGES), min_size=1, max_size=20))
def test_key_hits_round_half_up_modulo_12_exactly(pairs):
    ref = np.array([float(r) for r, _ in pairs])
    est = np.array([e for _, e in pairs])
    expected = [_round_half_up_exact(e) % 12 == r for r, e in pairs]
    assert metrics.key_hits(ref, est).tolist() == expected


@PROPS
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(-50_000, 50_000)), min_size=1, max_size=20),
       st.integers(-5, 5))
def test_key_accuracy_ignores_whole_octaves(pairs, octaves):
    ref = np.array([float(r) for r, _ in pairs])
    est = np.array([k / 1024.0 for _, k in pairs])  # dyadic: est + 12 * octaves is exact
    assert np.array_equal(metrics.key_hits(ref, est + 12.0 * octaves), metrics.key_hits(ref, est))
    assert metrics.key_accuracy(ref, est + 12.0 * octaves) == metrics.key_accuracy(ref, est)


@PROPS
@given(st.lists(st.tuples(st.integers(3, 7), _ESTIMATES | _EDGES), min_size=1, max_size=20))
def test_meter_hits_round_half_up_and_clip_exactly(pairs):
    ref = np.array([float(r) for r, _ in pairs])
    est = np.array([e for _, e in pairs])
    expected = [min(max(_round_half_up_exact(e), 3), 7) == r for r, e in pairs]
    assert metrics.time_signature_hits(ref, est).tolist() == expected


@st.composite
def _labels(draw, min_rows=2):
    n = draw(st.integers(min_rows, 25))
    columns = [draw(st.lists(_valid(t), min_size=n, max_size=n)) for t in TARGETS]
    return np.column_stack(columns)


@PROPS
@given(_labels())
def test_mean_predictor_scores_smse_one_and_perfect_predictor_r2_one(y):
    mean = metrics.per_target(y, metrics.mean_baseline(y, len(y)))
    perfect = metrics.per_target(y, y)
    for j, t in enumerate(TARGETS):
        if t in metrics.CLASS_TARGETS:  # the baseline predicts their majority class
            continue
        spread = np.ptp(y[:, j])
        if spread > 1e-100:  # (a smaller spread squares to 0: no variance to standardize by)
            assert mean.loc[t, "smse"] == 1.0 and mean.loc[t, "r2"] == 0.0, t
            assert perfect.loc[t, "r2"] == 1.0 and perfect.loc[t, "smse"] == 0.0, t
        elif spread == 0:  # a constant reference has no variance to standardize by
            assert math.isnan(mean.loc[t, "smse"]) and math.isnan(perfect.loc[t, "r2"]), t
    assert (perfect["mse"] == 0).all() and (perfect["mae"] == 0).all()
    assert perfect.loc["key", "accuracy"] == perfect.loc["time_signature", "accuracy"] == 1.0
    assert perfect.loc["tempo", "acc1"] == perfect.loc["tempo", "acc2"] == 1.0


@PROPS
@given(_labels(), st.data())
def test_scores_are_bounded_and_consistent(y, data):
    noise = data.draw(st.lists(st.floats(-3.0, 3.0), min_size=y.size, max_size=y.size))
    pred = y + np.array(noise).reshape(y.shape) * np.maximum(y.std(axis=0), 1.0)
    table = metrics.per_target(y, pred)
    assert (table["mse"] >= 0).all() and (table["mae"] >= 0).all()
    assert (table["mae"] ** 2 <= table["mse"] * (1 + 1e-12) + 1e-300).all()  # Jensen
    smse = table["smse"].dropna()
    assert (smse >= 0).all()
    np.testing.assert_array_equal(table["r2"].dropna(), 1.0 - smse)
    for column in ("accuracy", "acc1", "acc2"):
        assert table[column].dropna().between(0.0, 1.0).all()
    assert table.loc["tempo", "acc2"] >= table.loc["tempo", "acc1"]
    compared = metrics.compare_models(y, {metrics.BASELINE_NAME: metrics.mean_baseline(y, len(y)), "m": pred}, y_train=y)
    summary = metrics.summarize(compared)
    assert (summary["n_targets"] == len(TARGETS)).all()
    json.dumps(metrics.to_json_dict(compared), allow_nan=False)


@PROPS
@given(st.lists(st.tuples(st.floats(-60.0, 0.0), st.floats(-60.0, 0.0)), min_size=2, max_size=30))
def test_loudness_error_in_db_is_symmetric(pairs):
    a = np.array([[p] for p, _ in pairs])
    b = np.array([[q] for _, q in pairs])
    ab = metrics.per_target(a, b, targets=("loudness",)).loc["loudness"]
    ba = metrics.per_target(b, a, targets=("loudness",)).loc["loudness"]
    assert ab["mae"] == ba["mae"] and ab["mse"] == ba["mse"]
    assert ab["own_terms"] == f"MAE {ab['mae']:.1f} dB"


@PROPS
@given(_labels(), st.integers(0, 10), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_predictions_raise_instead_of_scoring(y, j, bad):
    """An infinite prediction, or a NaN one on some of a target's rows, is an error; only a
    target predicted on none of its rows (a model not trained on it) goes unscored."""
    pred = y.copy()
    pred[0, j] = bad
    if math.isnan(bad) and len(y) == 1:
        assert metrics.per_target(y, pred).iloc[j]["n"] == 0
        return
    with pytest.raises(ValueError, match="inf|NaN for"):
        metrics.per_target(y, pred)
