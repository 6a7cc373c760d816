"""Linking metadata rows to audio files: path column, ``<track_id>.<ext>``, or normalized artist - title."""

from __future__ import annotations

import functools
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from .._pandas import pd

from .audio import walk_audio

log = logging.getLogger(__name__)


_SEPARATORS = re.compile(r"[\s_]+")


class _NameTable(dict):
    """``str.translate`` table of :func:`normalize_name`, filled per character on first use.

    Dashes (Unicode category Pd, and the minus sign) become ``-``; other punctuation,
    symbols and control characters become a space; invisible format characters (soft
    hyphen, zero-width space and joiners, BOM) are removed; letters, combining marks,
    digits, spaces and ``_`` stay.
    """

    def __missing__(self, code: int):
        category = unicodedata.category(chr(code))
        if category == "Pd" or code == 0x2212:
            out = ord("-")
        elif category == "Cf":
            out = None
        elif category[0] in "PSC" and code != ord("_"):
            out = ord(" ")
        else:
            out = code
        self[code] = out
        return out


_NAME_TABLE = _NameTable()


def normalize_name(text: str) -> str:
    """Normalize a name for matching: NFKC, case-folded, punctuation and extra spaces removed.

    Every dash becomes ``-``; other punctuation and symbols become spaces; runs of spaces
    and underscores become one space, none at the ends; invisible format characters are
    dropped. Letters, digits and combining marks (accents, Indic vowel signs) are kept.
    The key is NFC and idempotent, the same for canonically or compatibly equivalent
    spellings (NFC/NFD, full-width letters, ligatures) and for upper and lower case as
    ``str.casefold`` folds them (Turkish dotless ı stays a letter of its own):
    ``"Beyonce\\u0301 — Halo"`` and ``"beyoncé - halo"`` give the same key.
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = unicodedata.normalize("NFKC", text).translate(_NAME_TABLE)  # case folding can decompose (ΐ)
    text = _SEPARATORS.sub(" ", text).strip()
    return unicodedata.normalize("NFC", text)


_FEAT = re.compile(r"\s*[\(\[]?\b(?:feat|ft|featuring)\b\.?\s+", re.IGNORECASE)


class _MarksTable(dict):
    """``str.translate`` table that drops combining characters (``unicodedata.combining``)."""

    def __missing__(self, code: int):
        out = None if unicodedata.combining(chr(code)) else code
        self[code] = out
        return out


_MARKS_TABLE = _MarksTable()


def fold_name(text: str) -> str:
    """:func:`normalize_name` with accents removed too (``"Beyoncé"`` and ``"Beyonce"`` give
    one key), for telling whether two credits name the same artist or song."""
    return normalize_name(unicodedata.normalize("NFKD", str(text)).translate(_MARKS_TABLE))


def credited_artists(value) -> list[str]:
    """Every artist a credit names, folded (:func:`fold_name`): the names of
    :func:`audioreg.data.tables.artist_names` (a ``;``-joined string, a Python list string
    such as ``"['A', 'B']"``, one name) with "feat." / "ft." / "featuring" credits split;
    ``"Guns N' Roses"`` = ``"Guns N Roses"``. Every spelling of one credit gives one list."""
    from .tables import artist_names

    names = []
    for part in artist_names(value):
        for name in _FEAT.split(part):
            key = fold_name(name.strip(" ()[]"))
            if key:
                names.append(key)
    return names


def song_key(artists, title) -> str | None:
    """One key per song: the first credited artist and the title without its "(feat. ...)" part."""
    names = credited_artists(artists)
    if not names or not isinstance(title, str):
        return None
    bare_title = fold_name(_FEAT.split(title)[0])
    return f"{names[0]} - {bare_title}" if bare_title else None


def stem_key(text: str) -> str:
    """Matching key of a file stem: :func:`normalize_name` with dashes as spaces."""
    return " ".join(normalize_name(text).replace("-", " ").split())


def artist_title_key(artists: str, title: str) -> str:
    """Key of an "artist - title" file stem; the first of ';'-separated artists is used.

    Kept for callers; the linker itself tries every credited artist (:func:`artist_title_keys`)."""
    first = str(artists).split(";")[0]
    return stem_key(f"{first} - {title}")


# ----------------------------------------------------------------------------- linking keys
#: ``bytes.translate`` table of :func:`fold_key` for ASCII: letters lower-cased, digits kept, the rest a space.
_ASCII_KEY = bytes(ord(chr(c).lower()) if c < 128 and chr(c).isalnum() else 32 for c in range(256))
#: Anything in NFKD text but ASCII and the combining diacritics (U+0300-U+036F, but for the
#: grapheme joiner U+034F, the one of them that is not a combining character).
_NOT_LATIN = re.compile(r"[^\x00-\x7f\u0300-\u034e\u0350-\u036f]")


def fold_key(text: str) -> str:
    """Key the linker compares "artist - title" names by: ``stem_key(fold_name(text))``.

    Case, accents, NFC/NFD, punctuation and dashes are ignored (``"Beyoncé - Halo"``,
    ``"beyonce_halo"`` and ``"BEYONCE\\u0301—HALO"`` give ``"beyonce halo"``). Text that is
    ASCII once its accents are gone is done at once; other text word by word (the keys
    of words recur, and are cached); the result is the same.
    """
    text = str(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)  # as fold_name
        if _NOT_LATIN.search(text):
            text = text.translate(_MARKS_TABLE)
            if not text.isascii():
                return " ".join(k for k in map(_word_key, text.split()) if k)
        else:  # ASCII letters and their accents: drop the accents
            text = text.encode("ascii", "ignore").decode("ascii")
    return " ".join(text.encode("ascii").translate(_ASCII_KEY).decode("ascii").split())


@functools.lru_cache(maxsize=1 << 17)
def _word_key(word: str) -> str:
    if not word.isascii():
        word = unicodedata.normalize("NFKD", word).translate(_MARKS_TABLE)  # as fold_name
        if not word.isascii():
            return " ".join(normalize_name(word).replace("-", " ").split())
    return " ".join(word.encode("ascii").translate(_ASCII_KEY).decode("ascii").split())


#: Where a title's credit part starts: "(feat. B)", "[ft. B]", "(with B)", " feat. B".
_TITLE_CREDIT = re.compile(r"[\(\[]\s*(?:feat|ft|featuring|with)\b|\b(?:feat|ft|featuring)\b\.?\s", re.IGNORECASE)
#: Words that may follow a bare title in a file name: its own credit part, or credits moved there.
_CREDIT_WORDS = ("feat", "ft", "featuring", "with")
#: Words file names join a first artist to the others with ("A feat. B", "A x B"); "&", ","
#: and ";" are punctuation, so "A & B" and "A, B" give the plain joined key "a b".
_JOIN_WORDS = ("feat", "ft", "featuring", "and", "x", "with", "vs")


def title_keys(title) -> tuple[str, str, str]:
    """``(title, bare, credit)`` keys (:func:`fold_key`) of a track title: the whole title, the
    title without its credit part ("(feat. B)", "(with B)", " ft. B") and that part
    (``"feat b"``; empty when the title has none, and then ``bare == title``)."""
    if not isinstance(title, str):
        return "", "", ""
    whole = fold_key(title)
    low = title.lower()
    m = _TITLE_CREDIT.search(title) if "ft" in low or "feat" in low or "with" in low else None
    if m and m.start() > 0:
        bare = fold_key(title[: m.start()])
        credit = whole[len(bare) + 1:]
        if bare and whole.startswith(bare + " ") and credit.split(" ", 1)[0] in _CREDIT_WORDS:
            return whole, bare, credit
    return whole, whole, ""


def artist_title_keys(artists, title) -> list[tuple[str, str]]:
    """Every ``(artist, title)`` pair the linker looks a row up by; a file matches when its
    stem's :func:`fold_key` is ``f"{artist} {title}"``.

    For the credited artists ``A, B, ...`` (:func:`credited_artists`: every ``;``-separated
    artist and "feat." credit) and the title with and without its credit part:
    ``"A - Song"`` and ``"B - Song"`` (each artist alone), ``"A & B - Song"``, ``"A, B - Song"``,
    ``"A feat. B - Song"`` (``ft``, ``featuring``, ``and``, ``x``, ``with``, ``vs``), for three
    or more also ``"A, B feat. C - Song"``; a title's credit moved to the artists
    (``"A feat. B - Song"`` for ``"Song (feat. B)"``) and other artists moved to the title
    (``"A - Song (feat. B)"`` for artists ``A;B`` and the title ``"Song"``). The first pair is
    the first artist with the whole title.
    """
    whole, bare, credit = title_keys(title)
    if not whole:
        return []
    names = list(dict.fromkeys(k for k in (" ".join(a.replace("-", " ").split()) for a in credited_artists(artists)) if k))
    if not names:
        return []
    forms = list(names)
    if len(names) > 1:
        rest = " ".join(names[1:])
        forms.append(" ".join(names))
        forms += [f"{names[0]} {w} {rest}" for w in _JOIN_WORDS]
        if len(names) > 2:
            forms += [f"{' '.join(names[:-1])} {w} {names[-1]}" for w in _JOIN_WORDS[:3]]
    titles = (whole, bare) if bare != whole else (whole,)
    keys = [(a, t) for a in forms for t in titles]
    if credit:
        keys += [(f"{a} {credit}", bare) for a in names]
    elif len(names) > 1:
        keys += [(names[0], f"{whole} {w} {' '.join(names[1:])}") for w in _CREDIT_WORDS]
    return list(dict.fromkeys(keys))


def _title_index(keys) -> set[str]:
    """Every part of the file keys that a row's bare title can be: the words after the first
    one, up to the end or to a credit word. A row whose bare title is not in it matches no
    file by artist - title (every pair of :func:`artist_title_keys` has the bare title there),
    so its pairs need not be built: this keeps a table of a million rows fast."""
    out: set[str] = set()
    for key in keys:
        words = key.split(" ")
        ends = [i for i, w in enumerate(words) if w in _CREDIT_WORDS]
        for start in range(1, len(words)):
            out.add(" ".join(words[start:]))
            for end in ends:
                if end > start:
                    out.add(" ".join(words[start:end]))
    return out


# ------------------------------------------------------------------------------ the folder
def index_audio_dir(audio_dir: str | os.PathLike) -> pd.DataFrame:
    """All audio files below ``audio_dir`` (:func:`audioreg.data.audio.walk_audio`), with their stem keys.

    Columns: ``path`` and ``stem`` (as ``walk_audio`` gives them), ``key`` (:func:`stem_key`)
    and ``fold`` (:func:`fold_key`, what "artist - title" is matched by).
    """
    found = walk_audio(audio_dir)
    paths, stems = [p for p, _ in found], [s for _, s in found]
    return pd.DataFrame({"path": paths, "stem": stems, "key": [stem_key(s) for s in stems],
                         "fold": [fold_key(s) for s in stems]}, columns=["path", "stem", "key", "fold"])


# ---------------------------------------------------------------------------------- linking
#: The rules, strongest first: a file two tracks' rows match goes to the stronger rule's row.
RULES = ("path column", "track_id file name", "artist - title")
#: File status in :attr:`LinkResult.files`.
FILE_STATUSES = ("linked", "contested", "ambiguous", "unmatched")
_SHOWN = 5  # candidates, rows or keys a message names before "and N more"


@dataclass
class LinkResult:
    """What :func:`link_table` found.

    links : DataFrame indexed like the table: ``path``, ``link``, ``reason``, ``note``,
        ``candidates`` (see :func:`link_table`).
    files : every audio file below the folder (:func:`index_audio_dir`'s columns) with
        ``status`` (:data:`FILE_STATUSES`) and ``rows`` (the rows it is linked to, or that
        matched it, as a tuple of ``row`` values).
    """

    links: pd.DataFrame
    files: pd.DataFrame

    @property
    def unmatched(self) -> pd.DataFrame:
        """The audio files no row matched by any rule (``path`` and ``stem``)."""
        return self.files.loc[self.files["status"] == "unmatched", ["path", "stem"]].reset_index(drop=True)


def _text(v) -> str | None:
    if type(v) is str:
        v = v.strip()
        return (v if v.isascii() else unicodedata.normalize("NFC", v)) or None
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(v)
    return None


def _texts(values: list) -> list[str | None]:
    """Cell values as stripped NFC text; None where missing or blank (whole numbers as text)."""
    # the common case first: ASCII with nothing to strip (the reader has stripped track ids)
    return [v if type(v) is str and v.isascii() and v and v[0] > " " and v[-1] > " " else _text(v) for v in values]


class _Paths:
    """Resolves a path column's value: relative to the metadata folder, then the audio folder."""

    def __init__(self, files: list[str], audio_dir: Path, metadata_dir: Path | None):
        self.bases = [b for b in (metadata_dir, audio_dir) if b is not None]
        self.known = {unicodedata.normalize("NFC", os.path.normpath(os.path.abspath(p))): i for i, p in enumerate(files)}

    def resolve(self, given: str):
        """The index position of the file below the audio folder, else the path of a file
        elsewhere; None when no such file exists."""
        spellings = [given]
        if os.sep == "/" and "\\" in given:
            spellings.append(given.replace("\\", "/"))  # written on Windows
        for spelling in spellings:
            for base in [None] if os.path.isabs(spelling) else self.bases:
                cand = os.path.normpath(os.path.abspath(spelling if base is None else os.path.join(base, spelling)))
                i = self.known.get(unicodedata.normalize("NFC", cand))
                if i is not None:
                    return i
                for form in dict.fromkeys((cand, unicodedata.normalize("NFC", cand), unicodedata.normalize("NFD", cand))):
                    if os.path.isfile(form):
                        return form
        return None


def _more(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def link_table(df: pd.DataFrame, *, audio_dir: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
               files: pd.DataFrame | None = None) -> LinkResult:
    """Link each metadata row to its audio file, and list the files no row matched.

    The rules, tried in this order; the first that finds any file decides the row:

    1. **path column** (``path``, else ``file``): relative to ``metadata_dir`` (the metadata
       file's folder), then to ``audio_dir``, or absolute; NFC or NFD spellings, ``\\``
       separators. A value naming no file is said in ``note`` (or ``reason``), and the
       next rules are tried.
    2. **track_id file name**: a file ``<track_id>.<ext>`` anywhere below ``audio_dir``: the
       stem equal to the track id after NFC (ids are case-sensitive), the extension in any case.
    3. **artist - title**: a file whose stem's :func:`fold_key` is one of the row's
       :func:`artist_title_keys` (every credited artist, alone or joined; the title with and
       without its "(feat. ...)" part; case, accents, NFC/NFD and punctuation ignored),
       anywhere below ``audio_dir``.

    A rule that finds several files links none: the row is **ambiguous**, its ``reason``
    names the candidates (the first few and how many) and ``candidates`` holds them all; it
    is not passed on to weaker rules. A file is never linked to two tracks: when rows of
    different track ids match one file, the row(s) of the strongest rule get it (path column
    > track_id file name > artist - title) and the others are told which row holds it; when
    the strongest rule is shared by two tracks, no row gets it and each says which rows
    also matched it (the file is **contested**). Rows of one track id (a track listed twice)
    share their file, and ``note`` says so. A row that loses a file is not passed on to
    weaker rules either.

    Parameters
    ----------
    df : the metadata table (``track_id``, optionally ``path`` or ``file``, ``artists``
        (``;``-separated), ``track_name``; ``row`` names rows in messages, else the index).
    files : :func:`index_audio_dir` of ``audio_dir``, when the caller has it already.

    Returns
    -------
    LinkResult
        ``links``: indexed like ``df``, with ``path`` (str, or None when not linked), ``link``
        (the rule of :data:`RULES` that linked it), ``reason`` (why not linked, with every
        name tried: the path, ``'<track_id>.<ext>'`` and the artist - title keys, or the bare
        title no file name ends in; None when linked), ``note`` (for a linked row: a path
        column naming no file, a file shared with rows of the same track id; else None) and
        ``candidates`` (the files the deciding rule found when it did not link: several when
        ambiguous, one when contested; a tuple, empty otherwise). ``files``: see
        :class:`LinkResult`.
    """
    audio_dir = Path(audio_dir)
    metadata_dir = Path(metadata_dir) if metadata_dir is not None else None
    files = index_audio_dir(audio_dir) if files is None else files.reset_index(drop=True)
    fpaths = files["path"].tolist()
    n = len(df)
    names = df["row"].tolist() if "row" in df.columns else list(df.index)
    tids = _texts(df["track_id"].tolist()) if "track_id" in df.columns else [None] * n
    top = os.path.join(str(audio_dir), "")
    where = " or ".join(dict.fromkeys(str(b) for b in (metadata_dir, audio_dir) if b is not None))

    def path_of(f) -> str:
        return fpaths[f] if type(f) is int else f

    def rel(f) -> str:
        return path_of(f).removeprefix(top)

    decided = np.zeros(n, dtype=bool)  # once a rule found a file for the row
    rank: dict[int, int] = {}  # row -> rule of its single match (index in RULES)
    match: dict[int, int | str] = {}  # row -> file: index position, or the path of a file elsewhere
    ambiguous: dict[int, tuple[str, list[int]]] = {}  # row -> (the names that found them, candidates)

    # 1. path column
    missing_path: dict[int, str] = {}
    given: dict[int, str] = {}
    for col in ("path", "file"):
        if col in df.columns:
            for i, g in enumerate(_texts(df[col].tolist())):
                if g and i not in given:
                    given[i] = g
    if given:
        resolver = _Paths(fpaths, audio_dir, metadata_dir)
        for i, g in given.items():
            f = resolver.resolve(g)
            if f is None:
                missing_path[i] = g
            else:
                rank[i], match[i], decided[i] = 0, f, True

    # 2. <track_id>.<ext>
    by_stem: dict[str, list[int]] = {}
    for f, stem in enumerate(files["stem"].tolist()):
        by_stem.setdefault(stem, []).append(f)
    named = (pd.Index(list(by_stem), dtype=object).get_indexer(pd.Index(tids, dtype=object)) >= 0 if by_stem
             else np.zeros(n, dtype=bool))
    for i in np.flatnonzero(named & ~decided).tolist():
        tid = tids[i]
        hits = by_stem[tid]
        decided[i] = True
        if len(hits) == 1:
            rank[i], match[i] = 1, hits[0]
        else:
            ambiguous[i] = (f"'{tid}.<ext>'", hits)

    # 3. artist - title: the pairs are built only for rows whose bare title some file name holds
    bare = np.full(n, None, dtype=object)  # rows tried by artist - title: their bare title
    tried_keys: dict[int, list[tuple[str, str]]] = {}
    if "artists" in df.columns and "track_name" in df.columns:
        by_fold: dict[str, list[int]] = {}
        for f, key in enumerate(files["fold"].tolist()):
            if key:
                by_fold.setdefault(key, []).append(f)
        held = _title_index(by_fold)
        # each distinct artist credit and title once (code -1: missing, the appended last entry)
        try:
            a_codes, a_uniq = pd.factorize(df["artists"])
        except TypeError:  # lists of names (a Parquet list column): as ";"-joined text
            a_codes, a_uniq = pd.factorize(df["artists"].map(lambda v: v if isinstance(v, str) or not isinstance(
                v, (list, tuple, np.ndarray)) else ";".join(str(x) for x in v)))
        t_codes, t_uniq = pd.factorize(df["track_name"])
        a_ok = np.array([type(a) is str and bool(a.strip()) for a in a_uniq] + [False], dtype=bool)
        t_bare = [(title_keys(t)[1] if type(t) is str else "") or None for t in t_uniq] + [None]
        t_held = np.array([b is not None and b in held for b in t_bare], dtype=bool)
        tried = ~decided & a_ok[a_codes] & np.array([b is not None for b in t_bare], dtype=bool)[t_codes]
        bare[tried] = np.array(t_bare, dtype=object)[t_codes[tried]]
        a_uniq, t_uniq = list(a_uniq), list(t_uniq)
        for i in np.flatnonzero(tried & t_held[t_codes]).tolist():
            keys = tried_keys[i] = artist_title_keys(a_uniq[a_codes[i]], t_uniq[t_codes[i]])
            hits: dict[int, str] = {}
            for art, ttl in keys:
                for f in by_fold.get(f"{art} {ttl}", ()):
                    hits.setdefault(f, f"{art} - {ttl}")
            if len(hits) == 1:
                rank[i], match[i], decided[i] = 2, next(iter(hits)), True
            elif hits:
                decided[i] = True
                ambiguous[i] = ("artist - title " + ", ".join(f"'{k}'" for k in dict.fromkeys(hits.values())), sorted(hits))

    # one file, one track: the strongest rule's rows keep it
    claims: dict[int | str, list[int]] = {}
    for i, f in match.items():
        claims.setdefault(f, []).append(i)
    lost: dict[int, str] = {}
    shared: dict[int, list[int]] = {}

    def track(i):
        return tids[i] if tids[i] is not None else ("row", i)

    def who(rows: list[int], *, by: bool = True) -> str:
        return _more([f"row {names[j]} (track_id {tids[j]!r}{', ' + RULES[rank[j]] if by else ''})" for j in rows])

    for f, rows in claims.items():
        if len(rows) == 1:
            continue
        best = min(rank[i] for i in rows)
        strongest = {track(i) for i in rows if rank[i] == best}
        if len(strongest) == 1:
            winner = strongest.pop()
            keep = [i for i in rows if track(i) == winner]
            for i in rows:
                if track(i) != winner:
                    lost[i] = (f"{rel(f)} matched by {RULES[rank[i]]}, but it is linked to {who(keep, by=False)} "
                               f"by {RULES[best]}, a stronger rule")
            if len(keep) > 1:
                for i in keep:
                    shared[i] = [j for j in keep if j != i]
        else:
            for i in rows:
                lost[i] = (f"{rel(f)} matched by {RULES[rank[i]]}, but also by {who([j for j in rows if j != i])} "
                           "of another track, so it is linked to none of them")

    # the links: linked rows first, then why the others are not
    path_col: list = [None] * n
    link_col: list = [None] * n
    note_col: list = [None] * n
    cand_col: list = [()] * n
    for i, f in match.items():
        if i in lost:
            cand_col[i] = (path_of(f),)
            continue
        path_col[i], link_col[i] = path_of(f), RULES[rank[i]]
        notes = []
        if i in missing_path:
            notes.append(f"path {missing_path[i]!r} names no file (under {where}); linked by {RULES[rank[i]]}")
        if i in shared:
            notes.append(f"{rel(f)} also linked to {who(shared[i], by=False)}, the same track")
        note_col[i] = "; ".join(notes) or None
    # the common case first: no '<track_id>.<ext>', and no file name has the bare title
    reason_col = [None if p is not None else f"no audio file for track_id {t!r}: tried '{t}.<ext>'" if b is None else
                  f"no audio file for track_id {t!r}: tried '{t}.<ext>', '<artist> - {b}' (no file name has this title)"
                  for p, t, b in zip(path_col, tids, bare.tolist())]
    no_tid = [i for i, t in enumerate(tids) if t is None]
    for i in set(missing_path) | set(ambiguous) | set(lost) | set(tried_keys) | set(no_tid):
        if path_col[i] is not None:
            continue
        parts = [f"path {missing_path[i]!r} names no file (under {where})"] if i in missing_path else []
        if i in lost:
            parts.append(lost[i])
        elif i in ambiguous:
            what, cands = ambiguous[i]
            parts.append(f"{len(cands)} files match {what}, so none is linked (name one in a path column): "
                         + _more([rel(c) for c in cands]))
            cand_col[i] = tuple(fpaths[c] for c in cands)
        else:
            tried = [f"'{tids[i]}.<ext>'"] if tids[i] is not None else []
            if i in tried_keys:
                tried.append("artist - title " + _more([f"'{a} - {t}'" for a, t in tried_keys[i]]))
            elif bare[i]:
                tried.append(f"'<artist> - {bare[i]}' (no file name has this title)")
            head = f"no audio file for track_id {tids[i]!r}" if tids[i] is not None else "no audio file for this row"
            if tried:
                parts.append(f"{head}: tried {', '.join(tried)}")
            else:
                parts.append(f"{head}: it has no {'' if i in missing_path else 'path, '}track_id, or artists and "
                             "track_name, to link by")
        reason_col[i] = "; ".join(parts)
    links = pd.DataFrame({"path": path_col, "link": link_col, "reason": reason_col, "note": note_col,
                          "candidates": cand_col}, index=df.index, dtype=object)

    # the folder's side: which file went where
    status = ["unmatched"] * len(fpaths)
    rows_of: list = [()] * len(fpaths)
    for i, (_, cands) in ambiguous.items():
        for f in cands:
            status[f] = "ambiguous"
            rows_of[f] = (*rows_of[f], names[i])
    for f, rows in claims.items():
        if type(f) is int:
            kept = [i for i in rows if i not in lost]
            status[f] = "linked" if kept else "contested"
            rows_of[f] = tuple(names[i] for i in (kept or rows))
    return LinkResult(links, files.assign(status=status, rows=rows_of))


def link_audio(df: pd.DataFrame, *, audio_dir: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
               files: pd.DataFrame | None = None) -> pd.DataFrame:
    """Find each metadata row's audio file: :func:`link_table`'s ``links``.

    Returns
    -------
    DataFrame indexed like ``df`` with ``path`` (str or None), ``link`` (the rule that
    matched), ``reason`` (why nothing matched, with the names tried, else None), ``note``
    and ``candidates``.
    """
    return link_table(df, audio_dir=audio_dir, metadata_dir=metadata_dir, files=files).links
