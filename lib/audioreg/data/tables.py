"""The public Spotify tables' layouts, their mapping onto the suite's columns, and artist credits.

Three public tables are read as they are (see :func:`audioreg.data.metadata.read_metadata`):

- ``spotify-tracks``: the Kaggle "Spotify Tracks Dataset" (~114k rows, one row per track and
  genre), an unnamed index column, ``track_id``, ``album_name``, ``track_name``,
  ``track_genre``, artists joined with ``;``;
- ``spotify-600k``: ``tracks.csv`` of "Spotify Dataset 1921-2020" (~600k rows), ``id``,
  ``name``, ``release_date``, artists and ``id_artists`` as Python list strings;
- ``spotify-1.2m``: ``tracks_features.csv`` of "Spotify 1.2M+ Songs", ``id``, ``name``,
  ``album``, ``album_id``, ``year``, artists and ``artist_ids`` as Python list strings.

Their columns are renamed to the suite's (:data:`RENAMES`: ``id`` -> ``track_id``...) and
their artists written one way: display names joined with ``;`` (:func:`artist_names`).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from .._pandas import pd

from ..targets import TARGETS

#: Column order of each public table, as its file has it ("" is the Kaggle table's unnamed index).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "spotify-tracks": ("", "track_id", "artists", "album_name", "track_name", "popularity", "duration_ms", "explicit",
                       "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                       "instrumentalness", "liveness", "valence", "tempo", "time_signature", "track_genre"),
    "spotify-600k": ("id", "name", "popularity", "duration_ms", "explicit", "artists", "id_artists", "release_date",
                     "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                     "instrumentalness", "liveness", "valence", "tempo", "time_signature"),
    "spotify-1.2m": ("id", "name", "album", "album_id", "artists", "artist_ids", "track_number", "disc_number",
                     "explicit", "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                     "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature", "year",
                     "release_date"),
}

#: Source column -> the suite's column. Applied only when the table lacks the suite's column
#: (a table with both ``id`` and ``track_id`` keeps ``id`` as it is).
RENAMES: dict[str, str] = {"id": "track_id", "name": "track_name", "album": "album_name", "file": "path"}

#: Columns kept as text (after renaming): never turned into numbers, and only an empty cell
#: is missing (an artist called "None" or a track id "NA" is not missing). NFC-normalized.
TEXT_COLUMNS: tuple[str, ...] = ("track_id", "artists", "album_name", "track_name", "track_genre", "path",
                                 "album_id", "artist_ids", "id_artists", "release_date")


def detect_layout(columns: Iterable[str]) -> str:
    """The public table whose columns ``columns`` has (names as in the file), else ``"custom"``."""
    have = {str(c).strip() for c in columns}
    for name, layout in LAYOUTS.items():
        if {c for c in layout if c} <= have:
            return name
    return "custom"


def canonical_columns(columns: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``columns`` renamed by :data:`RENAMES`, and the renames made (``{source: suite}``).

    A source column is renamed only when ``columns`` lacks the suite's name.
    """
    have = set(columns)
    renamed = {src: dst for src, dst in RENAMES.items() if src in have and dst not in have}
    return [renamed.get(c, c) for c in columns], renamed


# ------------------------------------------------------------------------------- artist credits
#: Longest list string given to ``ast.literal_eval`` (a bound on its time and memory).
_LITERAL_LIMIT = 10_000
#: Between two quoted items of a list string: the closing quote, a comma, the next opening quote.
_ITEM_BREAK = re.compile(r"""(?<=['"])\s*,\s*(?=['"])""")


def artist_names(value) -> list[str]:
    """The display names an artist credit lists: NFC, stripped, in order, without repeats.

    ``value`` may be a Python list string as the 600k and 1.2M tables write it
    (``"['A', 'B']"``, ``'["Guns N\\' Roses"]'``; read with :func:`ast.literal_eval`, or
    item by item when the list is malformed, e.g. an unescaped apostrophe), a
    ``;``-joined string (``"A;B"``, the Kaggle table), one name, or a list of names (a
    Parquet list column). Missing values and empty lists give ``[]``.

    >>> artist_names("['Earth, Wind & Fire', 'A']"), artist_names("A; B;A"), artist_names("['Guns N' Roses']")
    (['Earth, Wind & Fire', 'A'], ['A', 'B'], ["Guns N' Roses"])
    """
    if isinstance(value, str):
        text = value.strip()
        listed = text.startswith(("['", '["')) or (text.startswith("[") and text.endswith("]"))
        items = _list_items(text) if listed else text.split(";")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = [v for v in value if isinstance(v, str)]
    else:
        return []
    names = (unicodedata.normalize("NFC", item.strip()) for item in items)
    return list(dict.fromkeys(name for name in names if name))


def _list_items(text: str) -> list[str]:
    """Items of a list string ``text`` (``[...]``, or cut short: ``['A', 'B``)."""
    if len(text) <= _LITERAL_LIMIT and text.endswith("]"):
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" in a name is the name's text
                warnings.simplefilter("ignore", SyntaxWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    inner = text[1:-1].strip() if text.endswith("]") else text[1:].strip()
    if not inner:
        return []
    if "'" not in inner and '"' not in inner:
        return inner.split(",")
    items = []
    for item in _ITEM_BREAK.split(inner):
        item = item.strip()
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
            item = item[1:-1]
        items.append(item.strip("'\"").replace("\\'", "'").replace('\\"', '"'))
    return items


def join_artists(value) -> str | float:
    """:func:`artist_names` joined with ``;`` (NaN when there are none): the one form of the artists column."""
    names = artist_names(value)
    return ";".join(names) if names else np.nan


@functools.cache
def python_whitespace() -> str:
    """Every character ``str.strip()`` removes (``str.isspace``), for pyarrow's ``utf8_trim``."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


_ITEM = r"""(?:'[^'\\]*'|"[^"\\]*")"""
#: A list string of one quoted name without backslashes (what ``ast.literal_eval`` reads as it is).
_ONE_ITEM = rf"^\[{_ITEM}\]$"
#: A list string of several such names, as Python writes a list: ``['A', "B's"]``.
_ITEMS = rf"^\[{_ITEM}(?:, {_ITEM})+\]$"
_ITEM_TEXT = re.compile(r"'([^'\\]*)'" + r'|"([^"\\]*)"')


def canonical_artists(artists: pd.Series) -> pd.Series:
    """Every cell of ``artists`` as :func:`join_artists` writes it (text: NFC names joined with ``;``).

    Vectorized (pyarrow) for the common cells: one name, or a list string of quoted names
    without backslashes; the others go through :func:`join_artists` one by one, so the
    result is the same. ``artists`` is expected NFC (as :func:`~audioreg.data.metadata.read_metadata`
    makes text): a name cut out of an NFC list string is NFC.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pd.api.types.is_string_dtype(artists.dtype) and artists.dtype != object):
        return pd.Series([join_artists(v) for v in artists], index=artists.index, dtype="str")
    values = pa.array(artists.array, type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    space = python_whitespace()

    def mask(expr) -> pa.Array:
        return pc.fill_null(expr, False)

    one = mask(pc.match_substring_regex(values, _ONE_ITEM))
    several = mask(pc.match_substring_regex(values, _ITEMS))
    plain = mask(pc.and_(pc.invert(pc.starts_with(values, "[")), pc.invert(pc.match_substring(values, ";"))))
    out = pc.utf8_trim(values, characters=space)  # a plain name: str.strip()
    out = pc.if_else(one, pc.utf8_trim(pc.utf8_slice_codeunits(values, 2, -2), characters=space), out)
    out = map_cells(out, several, _join_items)
    rest = pc.and_(pc.and_(pc.invert(one), pc.invert(several)), pc.and_(pc.invert(plain), pc.is_valid(values)))
    out = map_cells(out, rest, join_artists)
    out = pc.if_else(pc.equal(pc.utf8_length(out), 0), pa.scalar(None, pa.string()), out)
    return pd.Series(out.to_pandas(), index=artists.index, dtype="str")


def map_cells(values, where, fn):
    """``values`` with the cells ``where`` replaced by ``fn(cell)`` (Python, one by one; NaN -> null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(where, pa.ChunkedArray):
        where = where.combine_chunks()
    if not pc.any(where).as_py():
        return values
    new = [fn(v) for v in pc.filter(values, where).to_pylist()]
    new = pa.array([v if isinstance(v, str) else None for v in new], type=pa.string())
    return pc.replace_with_mask(values, where, new)


def _join_items(text: str) -> str:
    """A list string matching :data:`_ITEMS` joined with ``;`` (names stripped, each once)."""
    names = text[2:-2].split("', '") if '"' not in text else (a or b for a, b in _ITEM_TEXT.findall(text))
    return ";".join(dict.fromkeys(name.strip() for name in names if name.strip()))


def target_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """The :data:`~audioreg.targets.TARGETS` among ``columns``, in TARGETS order."""
    have = set(columns)
    return tuple(t for t in TARGETS if t in have)
